"""
Reads on behalf of a client. Every function takes the client's tenant and
answers None for an id of another tenant exactly as for one that does not
exist, so that ids cannot be probed across tenants.
"""

from typing import Any

from django.conf import settings

from accounts.models import User
from realtime.models import Board, Card, ChatMessage, Notification, Room


def room_for(tenant_id: int, room_id: int) -> Room | None:
    return Room.objects.filter(pk=room_id, tenant_id=tenant_id).first()


def board_for(tenant_id: int, board_id: int) -> Board | None:
    return Board.objects.filter(pk=board_id, tenant_id=tenant_id).first()


def card_for(tenant_id: int, card_id: int) -> Card | None:
    return (
        Card.objects.select_related("board")
        .filter(pk=card_id, board__tenant_id=tenant_id)
        .first()
    )


def member_name_for_room(tenant_id: int, user_id: int, room_id: int) -> str | None:
    """The username of a tenant's member, if the room is the tenant's too."""
    return (
        User.objects.filter(pk=user_id, tenant_id=tenant_id, tenant__rooms__pk=room_id)
        .values_list("username", flat=True)
        .first()
    )


def message_payload(message: ChatMessage, author: str | None = None) -> dict[str, Any]:
    """A message as clients see it; ``author`` spares a query for the name."""
    return {
        "id": message.pk,
        "room": message.room_id,
        "author": author if author is not None else message.author.username,
        "body": message.body,
        "at": message.created_at.isoformat(),
    }


def recent_messages(room: Room) -> list[dict[str, Any]]:
    limit = settings.DASHIFY_CHAT_HISTORY
    latest = room.messages.select_related("author").order_by("-id")[:limit]
    return [message_payload(m) for m in reversed(latest)]


def card_payload(card: Card) -> dict[str, Any]:
    return {
        "id": card.pk,
        "board": card.board_id,
        "column": card.column_id,
        "title": card.title,
        "position": card.position,
        "due_at": card.due_at.isoformat() if card.due_at else None,
        "assignee": card.assignee_id,
        "assignee_name": card.assignee.username if card.assignee else None,
    }


def board_snapshot(board: Board) -> dict[str, Any]:
    cards = board.cards.select_related("assignee").order_by("position", "id")
    return {
        "id": board.pk,
        "name": board.name,
        "columns": [
            {"id": c.pk, "name": c.name, "position": c.position}
            for c in board.columns.all()
        ],
        "cards": [card_payload(card) for card in cards],
    }


def notification_payload(notification: Notification) -> dict[str, Any]:
    return {
        "id": notification.pk,
        "text": notification.text,
        "link": notification.link,
        "at": notification.created_at.isoformat(),
        "read": notification.read_at is not None,
    }


def recent_notifications(user_id: int, limit: int = 20) -> list[dict[str, Any]]:
    latest = Notification.objects.filter(user_id=user_id).order_by("-id")[:limit]
    return [notification_payload(n) for n in latest]


def unread_count(user_id: int) -> int:
    return Notification.objects.filter(user_id=user_id, read_at=None).count()


def rooms_of(tenant_id: int) -> list[dict[str, Any]]:
    return [
        {"id": r.pk, "name": r.name} for r in Room.objects.filter(tenant_id=tenant_id)
    ]


def boards_of(tenant_id: int) -> list[dict[str, Any]]:
    return [
        {"id": b.pk, "name": b.name} for b in Board.objects.filter(tenant_id=tenant_id)
    ]


def members_of(tenant_id: int) -> list[dict[str, Any]]:
    """The tenant's active users, for assigning cards."""
    from accounts.models import User

    users = User.objects.filter(tenant_id=tenant_id, is_active=True).order_by(
        "username"
    )
    return [{"id": u.pk, "username": u.username} for u in users]
