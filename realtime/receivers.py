"""Close the sockets of sessions that ended."""

from typing import Any

from django.dispatch import receiver

from accounts.signals import session_ended
from realtime import fanout, groups


@receiver(session_ended)
def close_session_sockets(
    sender: Any, user_id: int, binding: str, reason: str, **kwargs: Any
) -> None:
    # One PUBLISH reaches every server process; each closes its own sockets
    # of that session (realtime.consumers.DashboardConsumer.session_ended).
    fanout.publish(
        groups.session_group(binding), {"type": "session.ended", "reason": str(reason)}
    )
