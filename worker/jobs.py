"""
Background jobs. They read the database but write nothing to it: every
change goes through the internal API (worker.api), so that the API's
checks, idempotency and live notifications apply to background work too.
"""

import csv
import io
import logging
from datetime import timedelta

import django_rq
from django.conf import settings
from django.utils import timezone
from rq import Retry

from internal import scopes
from realtime.models import Card, Export
from worker import api

logger = logging.getLogger("dashify.worker")

CSV_HEADER = ["card", "title", "column", "position", "assignee", "due_at"]


def _retry() -> Retry | None:
    retries = settings.DASHIFY_JOB_RETRIES
    return Retry(max=retries, interval=[30, 120, 600][:retries]) if retries else None


def enqueue_export(export: Export) -> None:
    """Queue the building of ``export``."""
    django_rq.get_queue(settings.DASHIFY_JOB_QUEUE).enqueue(
        export_board, export.pk, retry=_retry()
    )


def build_csv(export: Export) -> str:
    cards = (
        Card.objects.filter(board=export.board)
        .select_related("column", "assignee")
        .order_by("column__position", "position", "id")
    )
    out = io.StringIO()
    # Every field quoted: a separator inside a title (";" in locales that
    # split on it) cannot start a new, unneutralised cell.
    writer = csv.writer(out, quoting=csv.QUOTE_ALL)
    writer.writerow(CSV_HEADER)
    for card in cards:
        writer.writerow(
            [
                card.pk,
                _neutralise(card.title),
                _neutralise(card.column.name),
                card.position,
                _neutralise(card.assignee.username) if card.assignee else "",
                card.due_at.isoformat() if card.due_at else "",
            ]
        )
    return out.getvalue()


def _neutralise(value: str) -> str:
    # A cell starting with = + - @ is a formula to spreadsheet programs;
    # prefix it so that an exported card title cannot run as one.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def export_board(export_id: int) -> str:
    """Build an export's CSV and hand it to the API, which notifies the user."""
    export = Export.objects.select_related("board").get(pk=export_id)
    api.call(
        f"/internal/exports/{export.pk}/",
        scope=scopes.export_complete(
            tenant_id=export.board.tenant_id, export_id=export.pk
        ),
        idempotency_key=f"export:{export.pk}",
        data=build_csv(export),
        content_type="text/csv; charset=utf-8",
    )
    return f"export {export.pk} stored"


def send_due_reminders() -> str:
    """
    Notify the assignee of every card due within the next 24 hours.

    Each reminder's idempotency key names the card and its due time, so
    running this any number of times notifies each assignee once per due
    date; moving the due date earns a new reminder.
    """
    now = timezone.now()
    cards = Card.objects.filter(
        due_at__gte=now,
        due_at__lt=now + timedelta(hours=24),
        assignee__isnull=False,
        assignee__is_active=True,
    ).select_related("assignee", "board")
    sent = 0
    for card in cards:
        assignee = card.assignee
        if assignee is None or card.due_at is None:
            continue
        try:
            api.call(
                "/internal/notifications/",
                scope=scopes.notification_create(
                    tenant_id=card.board.tenant_id, user_id=assignee.pk
                ),
                idempotency_key=f"reminder:{card.pk}:{int(card.due_at.timestamp())}",
                json={
                    "tenant": card.board.tenant_id,
                    "user": assignee.pk,
                    "text": f"“{card.title}” is due {card.due_at:%Y-%m-%d %H:%M} UTC.",
                    "link": "/",
                },
            )
        except api.APIRefused as refusal:
            # One card the API will not take (its assignee left, say) must
            # not keep the others from their reminders.
            logger.warning("reminder for card %s refused: %s", card.pk, refusal)
            continue
        sent += 1
    return f"{sent} reminder(s) checked"
