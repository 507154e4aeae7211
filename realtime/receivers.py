"""Close the sockets of sessions that ended."""

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.dispatch import receiver

from accounts.signals import session_ended
from realtime import groups


@receiver(session_ended)
def close_session_sockets(
    sender: Any, user_id: int, binding: str, reason: str, **kwargs: Any
) -> None:
    # One PUBLISH reaches every server process; each closes its own sockets
    # of that session (realtime.consumers.DashboardConsumer.session_ended).
    async_to_sync(get_channel_layer().group_send)(
        groups.session_group(binding), {"type": "session.ended", "reason": str(reason)}
    )
