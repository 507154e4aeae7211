"""
Background work end to end: daphne processes, a real RQ worker and the
internal API between them, with people on real sockets. The worker changes
nothing itself; what it does reaches people only through the API.
"""

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from rq.job import JobStatus
from rq.results import Result

from tests.conftest import LiveSite
from tests.worker.conftest import Jobs, Visitor, live_socket, next_frame, send

pytestmark = pytest.mark.slow

IDS = """
import json
from accounts.models import User
from realtime.models import Board
print(json.dumps({
    "users": {u.username: u.pk for u in User.objects.all()},
    "boards": {b.tenant.slug: b.pk for b in Board.objects.select_related("tenant")},
}))
"""

NOTIFICATIONS_OF = """
import json
from realtime.models import Notification
rows = Notification.objects.filter(user__username={username!r}).order_by("id")
print(json.dumps([[n.text, n.link, n.idempotency_key] for n in rows]))
"""

# One acme card due in an hour, assigned to bob; prints its id, title and
# due time as the reminder's idempotency key spells it.
ONE_DUE_CARD = """
import json
from datetime import timedelta
from django.utils import timezone
from accounts.models import User
from realtime.models import Card
card = Card.objects.filter(board__tenant__slug="acme").order_by("id").first()
card.due_at = timezone.now().replace(microsecond=0) + timedelta(hours=1)
card.assignee = User.objects.get(username="bob")
card.save()
print(json.dumps([card.pk, card.title, int(card.due_at.timestamp())]))
"""

EXPORT_STATUS = """
import json
from realtime.models import Export
print(json.dumps(Export.objects.get(pk={export_id}).status))
"""


def ids(jobs: Jobs) -> dict[str, dict[str, int]]:
    return jobs.shell_json(IDS)


def notifications_of(jobs: Jobs, username: str) -> list[list[str]]:
    return jobs.shell_json(NOTIFICATIONS_OF.format(username=username))


def reminder_text(title: str, due: datetime) -> str:
    return f"“{title}” is due {due:%Y-%m-%d %H:%M} UTC."


def export_link(export_id: int) -> str:
    return f"/realtime/exports/{export_id}/download/"


def expected_rows(snapshot: dict[str, Any]) -> list[list[str]]:
    columns = {column["id"]: column for column in snapshot["columns"]}
    cards = sorted(
        snapshot["cards"],
        key=lambda c: (columns[c["column"]]["position"], c["position"], c["id"]),
    )
    return [
        ["card", "title", "column", "position", "assignee", "due_at"],
        *(
            [
                str(card["id"]),
                card["title"],
                columns[card["column"]]["name"],
                str(card["position"]),
                card["assignee_name"] or "",
                card["due_at"] or "",
            ]
            for card in cards
        ),
    ]


def request_export(visitor: Visitor, board_id: int) -> int:
    response = visitor.post(f"/realtime/boards/{board_id}/export/")
    assert response.status_code == 202, response.text
    return response.json()["export"]


async def test_an_export_reaches_its_requester_as_a_notification_and_a_csv(
    live_site: LiveSite, jobs: Jobs
) -> None:
    server = live_site.start_server()
    alice = await asyncio.to_thread(Visitor(server).sign_in, "alice")
    board_id = (await asyncio.to_thread(ids, jobs))["boards"]["acme"]

    async with live_socket(alice, live_site.origin) as (socket, hello):
        await send(socket, {"type": "board.subscribe", "board": board_id})
        snapshot = (await next_frame(socket, "board.snapshot"))["board"]
        export_id = await asyncio.to_thread(request_export, alice, board_id)
        await asyncio.to_thread(jobs.run_worker, server.url)
        frame = await next_frame(socket, "notification.created", within=10)

    assert frame["notification"]["text"] == "Your export of board “Roadmap” is ready."
    assert frame["notification"]["link"] == export_link(export_id)
    assert frame["unread"] == hello["unread"] + 1

    download = await asyncio.to_thread(alice.get, frame["notification"]["link"])
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert download.headers["Content-Disposition"].startswith("attachment; ")
    assert list(csv.reader(io.StringIO(download.text))) == expected_rows(snapshot)


def test_a_finished_export_is_served_only_to_signed_in_members_of_its_tenant(
    live_site: LiveSite, jobs: Jobs
) -> None:
    server = live_site.start_server()
    alice = Visitor(server).sign_in("alice")
    export_id = request_export(alice, ids(jobs)["boards"]["acme"])
    jobs.run_worker(server.url)
    link = export_link(export_id)

    anonymous = Visitor(server).get(link)
    carol = Visitor(server).sign_in("carol").get(link)
    bob = Visitor(server).sign_in("bob").get(link)

    assert anonymous.status_code == 302
    assert anonymous.headers["Location"] == f"/accounts/login/?next={quote(link)}"
    assert (carol.status_code, carol.text) == (404, "No such export.")
    assert bob.status_code == 200
    assert bob.text == alice.get(link).text


async def test_due_reminders_notify_the_assignee_once_per_due_card(
    live_site: LiveSite, jobs: Jobs
) -> None:
    server = live_site.start_server()
    alice = await asyncio.to_thread(Visitor(server).sign_in, "alice")
    known = await asyncio.to_thread(ids, jobs)
    bob_id = known["users"]["bob"]
    now = datetime.now(UTC).replace(microsecond=0)
    due_in = [timedelta(hours=2), timedelta(hours=20), timedelta(days=3)]

    async with live_socket(alice, live_site.origin) as (socket, _):
        await send(
            socket, {"type": "board.subscribe", "board": known["boards"]["acme"]}
        )
        snapshot = (await next_frame(socket, "board.snapshot"))["board"]
        cards = sorted(snapshot["cards"], key=lambda card: card["id"])[: len(due_in)]
        for card, delay in zip(cards, due_in, strict=True):
            due = (now + delay).isoformat()
            await send(
                socket,
                {
                    "type": "card.update",
                    "card": card["id"],
                    "due_at": due,
                    "assignee": bob_id,
                },
            )
            updated = (await next_frame(socket, "card.updated"))["card"]
            assert (updated["id"], updated["due_at"], updated["assignee"]) == (
                card["id"],
                due,
                bob_id,
            )

    runs = []
    for _ in range(2):
        runs.append(await asyncio.to_thread(jobs.enqueue_reminders))
        await asyncio.to_thread(jobs.run_worker, server.url)

    assert [jobs.job(job_id).return_value() for job_id in runs] == [
        "2 reminder(s) checked",
        "2 reminder(s) checked",
    ]
    due_soon = [
        (card, now + delay) for card, delay in zip(cards[:2], due_in[:2], strict=True)
    ]
    assert sorted(await asyncio.to_thread(notifications_of, jobs, "bob")) == sorted(
        [
            reminder_text(card["title"], due),
            "/",
            f"reminder:{card['id']}:{int(due.timestamp())}",
        ]
        for card, due in due_soon
    )


def test_a_job_waits_out_an_internal_api_outage_and_notifies_once(
    live_site: LiveSite, jobs: Jobs
) -> None:
    card_id, title, due = jobs.shell_json(ONE_DUE_CARD)
    job_id = jobs.enqueue_reminders()
    # The first server listens on the site's own port: nothing does yet.
    api_url = f"http://127.0.0.1:{live_site.env['PORT']}"

    worker = jobs.start_worker(
        api_url, DASHIFY_WORKER_ATTEMPTS="6", DASHIFY_WORKER_BACKOFF="0.5"
    )
    worker.wait_for_output("internal API unreachable")
    live_site.start_server()
    returncode = worker.finish()

    assert returncode == 0, worker.output()
    assert (
        "internal API unreachable (ConnectionError) on /internal/notifications/ "
        "(attempt 1 of 6)"
    ) in worker.output()
    job = jobs.job(job_id)
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == "1 reminder(s) checked"
    assert notifications_of(jobs, "bob") == [
        [
            reminder_text(title, datetime.fromtimestamp(due, UTC)),
            "/",
            f"reminder:{card_id}:{due}",
        ]
    ]


ENQUEUE_EXPORT = """
from accounts.models import User
from realtime.models import Board, Export
from worker.jobs import enqueue_export
import django_rq
from django.conf import settings
export = Export.objects.create(
    board=Board.objects.get(tenant__slug="acme"),
    requested_by=User.objects.get(username="alice"),
)
enqueue_export(export)
# enqueue_export returns nothing; the queue is this test's alone.
job = django_rq.get_queue(settings.DASHIFY_JOB_QUEUE).get_jobs()[-1]
"""


def queue_an_export(jobs: Jobs, retries: int) -> tuple[int, str]:
    job_id = jobs.enqueue(ENQUEUE_EXPORT, DASHIFY_JOB_RETRIES=str(retries))
    export_id = int(jobs.job(job_id).args[0])
    return export_id, job_id


def test_a_job_that_keeps_failing_ends_in_the_failed_registry(
    jobs: Jobs, unused_api_url: str
) -> None:
    export_id, job_id = queue_an_export(jobs, retries=0)

    worker = jobs.run_worker(
        unused_api_url,
        DASHIFY_WORKER_ATTEMPTS="2",
        DASHIFY_WORKER_BACKOFF="0.1",
        DASHIFY_JOB_RETRIES="0",
    )

    assert jobs.queue.failed_job_registry.get_job_ids() == [job_id]
    result = jobs.job(job_id).latest_result()
    assert result is not None and result.type == Result.Type.FAILED
    assert result.exc_string is not None
    assert result.exc_string.strip().splitlines()[-1] == (
        "worker.api.APIUnavailable: internal API unreachable (ConnectionError) "
        f"on /internal/exports/{export_id}/"
    )
    assert [
        line.split(" on ", 1)[1]
        for line in worker.output().splitlines()
        if "WARNING dashify.worker internal API unreachable" in line
    ] == [
        f"/internal/exports/{export_id}/ (attempt 1 of 2)",
        f"/internal/exports/{export_id}/ (attempt 2 of 2)",
    ]
    assert jobs.shell_json(EXPORT_STATUS.format(export_id=export_id)) == "pending"


def test_a_failed_job_with_retries_left_is_scheduled_again(
    jobs: Jobs, unused_api_url: str
) -> None:
    _, job_id = queue_an_export(jobs, retries=2)

    jobs.run_worker(
        unused_api_url, DASHIFY_WORKER_ATTEMPTS="1", DASHIFY_WORKER_BACKOFF="0.1"
    )

    assert jobs.queue.failed_job_registry.get_job_ids() == []
    assert jobs.queue.scheduled_job_registry.get_job_ids() == [job_id]
    assert jobs.job(job_id).retries_left == 1


async def test_worker_and_server_logs_carry_no_token(
    live_site: LiveSite, jobs: Jobs
) -> None:
    server = live_site.start_server()
    alice = await asyncio.to_thread(Visitor(server).sign_in, "alice")
    board_id = (await asyncio.to_thread(ids, jobs))["boards"]["acme"]
    await asyncio.to_thread(jobs.shell_json, ONE_DUE_CARD)

    async with live_socket(alice, live_site.origin) as (socket, _):
        export_id = await asyncio.to_thread(request_export, alice, board_id)
        await asyncio.to_thread(jobs.enqueue_reminders)
        worker = await asyncio.to_thread(jobs.run_worker, server.url)
        await next_frame(socket, "notification.created", within=10)

    worker_log, server_log = worker.output(), server.log()
    session_cookie = alice.http.cookies[settings.SESSION_COOKIE_NAME]
    assert session_cookie is not None
    # DEBUG output of both calls was captured, so the scan below saw them.
    assert f'"POST /internal/exports/{export_id}/ HTTP/1.1" 200' in worker_log
    assert '"POST /internal/notifications/ HTTP/1.1" 201' in worker_log
    assert "ws handshake accepted" in server_log
    for log in (worker_log, server_log):
        assert "eyJ" not in log
        assert session_cookie not in log
        # The redaction filter is the last line of defence: nothing should
        # have needed it.
        assert "[redacted]" not in log
