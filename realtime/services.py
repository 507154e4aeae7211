"""
Writes for chat, notifications and boards. Each one stores first and then,
once the transaction commits, broadcasts to the groups that show it, so a
client never sees an event for data that was rolled back.
"""

import logging
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from redis.exceptions import RedisError

from accounts.models import Tenant, User
from realtime import fanout, groups, selectors, unread
from realtime.exceptions import Invalid, NotFound
from realtime.models import (
    MAX_MESSAGE_LENGTH,
    MAX_TITLE_LENGTH,
    Board,
    Card,
    ChatMessage,
    Column,
    Export,
    Notification,
    Room,
)


def broadcast(group: str, event: dict[str, Any]) -> None:
    """
    Send an event to a group after the current transaction commits.

    The write is already stored by then, so a failure to publish is logged
    and swallowed: telling the sender to retry would store it twice, and
    clients resynchronise from history and snapshots when they rejoin.
    """

    def send() -> None:
        try:
            fanout.publish(group, event)
        except (RedisError, OSError):
            logger.warning("event %s not delivered: Redis unreachable", event["type"])

    transaction.on_commit(send)


logger = logging.getLogger("dashify.realtime")


def _clean_text(value: object, limit: int, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{what} must be a non-empty string.")
    value = value.strip()
    if len(value) > limit:
        raise Invalid(f"{what} is longer than {limit} characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate ("\\ud800" in JSON) is not text.
        raise Invalid(f"{what} must be valid Unicode text.") from None
    return value


def post_message(*, tenant_id: int, user_id: int, room_id: int, body: object) -> None:
    text = _clean_text(body, MAX_MESSAGE_LENGTH, "body")
    # One query both checks that the room is the tenant's and the author
    # the tenant's member, and fetches the name the event shows.
    author = selectors.member_name_for_room(tenant_id, user_id, room_id)
    if author is None:
        raise NotFound
    message = ChatMessage.objects.create(room_id=room_id, author_id=user_id, body=text)
    broadcast(
        groups.room_group(tenant_id, room_id),
        {
            "type": "chat.message",
            "message": selectors.message_payload(message, author=author),
        },
    )


def notify(
    *, user: User, text: str, link: str = "", idempotency_key: str | None = None
) -> tuple[Notification, bool]:
    """
    Store a notification for ``user`` and push it to their sockets.

    With an ``idempotency_key`` already used for this user, return the
    existing notification and push nothing: a retried call is harmless.
    """
    text = _clean_text(text, 500, "text")
    if idempotency_key is not None:
        existing = Notification.objects.filter(
            user=user, idempotency_key=idempotency_key
        ).first()
        if existing is not None:
            return existing, False
    try:
        with transaction.atomic():
            notification = Notification.objects.create(
                user=user, text=text, link=link, idempotency_key=idempotency_key
            )
    except IntegrityError:
        # A concurrent retry with the same key won the race.
        return Notification.objects.get(
            user=user, idempotency_key=idempotency_key
        ), False
    count = selectors.unread_count(user.pk)
    transaction.on_commit(lambda: unread.remember(user.pk, count))
    broadcast(
        groups.user_group(user.pk),
        {
            "type": "notification.created",
            "notification": selectors.notification_payload(notification),
            "unread": count,
        },
    )
    return notification, True


def mark_read(*, user_id: int, notification_id: int) -> None:
    updated = Notification.objects.filter(
        pk=notification_id, user_id=user_id, read_at=None
    ).update(read_at=timezone.now())
    if (
        not updated
        and not Notification.objects.filter(
            pk=notification_id, user_id=user_id
        ).exists()
    ):
        raise NotFound
    count = selectors.unread_count(user_id)
    transaction.on_commit(lambda: unread.remember(user_id, count))
    broadcast(
        groups.user_group(user_id),
        {"type": "notification.read", "id": notification_id, "unread": count},
    )


def _column_for(board: Board, column_id: object) -> Column:
    if type(column_id) is not int:
        raise Invalid("column must be an integer id.")
    column = board.columns.filter(pk=column_id).first()
    if column is None:
        raise NotFound
    return column


def _renumber(column: Column, card: Card, position: int) -> list[int]:
    siblings = list(column.cards.exclude(pk=card.pk).order_by("position", "id"))
    position = max(0, min(position, len(siblings)))
    siblings.insert(position, card)
    for index, sibling in enumerate(siblings):
        if sibling.position != index or sibling.pk == card.pk:
            sibling.position = index
            sibling.save(update_fields=["position", "column", "updated_at"])
    return [sibling.pk for sibling in siblings]


def create_card(
    *, tenant_id: int, board_id: int, column_id: object, title: object
) -> None:
    board = selectors.board_for(tenant_id, board_id)
    if board is None:
        raise NotFound
    column = _column_for(board, column_id)
    text = _clean_text(title, MAX_TITLE_LENGTH, "title")
    if board.cards.count() >= settings.DASHIFY_BOARD_MAX_CARDS:
        raise Invalid(
            f"A board holds at most {settings.DASHIFY_BOARD_MAX_CARDS} cards."
        )
    with transaction.atomic():
        card = Card.objects.create(
            board=board, column=column, title=text, position=column.cards.count()
        )
        broadcast(
            groups.board_group(tenant_id, board.pk),
            {"type": "card.created", "card": selectors.card_payload(card)},
        )


def update_card(*, tenant_id: int, card_id: int, changes: dict[str, Any]) -> None:
    """
    Change a card's ``title``, ``due_at`` (ISO 8601 or null) and/or
    ``assignee`` (a user id of the same tenant, or null); other keys are
    ignored.
    """
    card = selectors.card_for(tenant_id, card_id)
    if card is None:
        raise NotFound
    fields = ["updated_at"]
    if "title" in changes:
        card.title = _clean_text(changes["title"], MAX_TITLE_LENGTH, "title")
        fields.append("title")
    if "due_at" in changes:
        card.due_at = _parse_due(changes["due_at"])
        fields.append("due_at")
    if "assignee" in changes:
        card.assignee = _assignee(tenant_id, changes["assignee"])
        fields.append("assignee")
    if len(fields) == 1:
        raise Invalid("Nothing to change: send title, due_at or assignee.")
    card.save(update_fields=fields)
    broadcast(
        groups.board_group(tenant_id, card.board_id),
        {"type": "card.updated", "card": selectors.card_payload(card)},
    )


def _parse_due(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise Invalid("due_at must be an ISO 8601 date-time or null.")
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise Invalid("due_at must be an ISO 8601 date-time or null.") from None
    if not 2000 <= parsed.year <= 9000:
        raise Invalid("due_at must be between the years 2000 and 9000.")
    return parsed


def _assignee(tenant_id: int, value: object) -> User | None:
    if value is None:
        return None
    if type(value) is not int:
        raise Invalid("assignee must be a user id or null.")
    user = User.objects.filter(pk=value, tenant_id=tenant_id, is_active=True).first()
    if user is None:
        raise NotFound
    return user


def move_card(
    *, tenant_id: int, card_id: int, column_id: object, position: object
) -> None:
    card = selectors.card_for(tenant_id, card_id)
    if card is None:
        raise NotFound
    column = _column_for(card.board, column_id)
    if type(position) is not int or position < 0:
        raise Invalid("position must be a non-negative integer.")
    with transaction.atomic():
        old_column = card.column
        card.column = column
        order = _renumber(column, card, position)
        if old_column.pk != column.pk:
            for index, sibling in enumerate(
                old_column.cards.order_by("position", "id")
            ):
                if sibling.position != index:
                    sibling.position = index
                    sibling.save(update_fields=["position", "updated_at"])
        card.refresh_from_db()
        broadcast(
            groups.board_group(tenant_id, card.board_id),
            {
                "type": "card.moved",
                "card": selectors.card_payload(card),
                "order": order,
            },
        )


DEMO_COLUMNS = ["To do", "Doing", "Done"]
DEMO_CARDS = {
    "acme": ["Draft the Q3 report", "Review dashboards", "Plan the offsite"],
    "globex": ["Audit the reactor", "Order new badges"],
}


def ensure_demo_content(tenant: Tenant) -> None:
    """Give a tenant a "general" room and a board with a few cards (idempotent)."""
    Room.objects.get_or_create(tenant=tenant, name="general")
    board, created = Board.objects.get_or_create(tenant=tenant, name="Roadmap")
    if not created:
        return
    columns = [
        Column.objects.create(board=board, name=name, position=index)
        for index, name in enumerate(DEMO_COLUMNS)
    ]
    for index, title in enumerate(DEMO_CARDS.get(tenant.slug, ["First card"])):
        Card.objects.create(board=board, column=columns[0], title=title, position=index)


def request_export(*, user: User, board_id: int) -> Export:
    """Record an export of one of the user's tenant's boards, to be built."""
    board = selectors.board_for(user.tenant_id, board_id)
    if board is None:
        raise NotFound
    return Export.objects.create(board=board, requested_by=user)


def complete_export(*, export_id: int, content: str) -> Export:
    """
    Store an export's CSV and notify the person who asked for it. Storing
    the same export again changes nothing and notifies nobody twice.
    """
    with transaction.atomic():
        export = (
            Export.objects.select_for_update().select_related("board").get(pk=export_id)
        )
        if export.status != Export.Status.READY:
            export.content = content
            export.status = Export.Status.READY
            export.completed_at = timezone.now()
            export.save(update_fields=["content", "status", "completed_at"])
    notify(
        user=export.requested_by,
        text=f"Your export of board “{export.board.name}” is ready.",
        link=reverse("realtime:download_export", args=[export.pk]),
        idempotency_key=f"export:{export.pk}",
    )
    return export
