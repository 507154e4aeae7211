"""Close the sockets of sessions that ended; keep unread counts honest."""

import logging
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from redis.exceptions import RedisError

from accounts.signals import session_ended
from realtime import fanout, groups, unread
from realtime.models import Notification

logger = logging.getLogger("dashify.realtime")


@receiver(session_ended)
def close_session_sockets(
    sender: Any, user_id: int, binding: str, reason: str, **kwargs: Any
) -> None:
    # One PUBLISH reaches every server process; each closes its own sockets
    # of that session (realtime.consumers.DashboardConsumer.session_ended).
    try:
        fanout.publish(
            groups.session_group(binding),
            {"type": "session.ended", "reason": str(reason)},
        )
    except (RedisError, OSError):
        # The session is gone already; its sockets notice within
        # DASHIFY_WS_SESSION_CHECK seconds (realtime.consumers).
        logger.warning("could not announce the end of a session of user %s", user_id)


@receiver([post_save, post_delete], sender=Notification)
def forget_unread_count(sender: Any, instance: Notification, **kwargs: Any) -> None:
    user_id = instance.user_id
    transaction.on_commit(lambda: unread.forget(user_id))
