"""
Real background work for the end-to-end tests: RQ workers as subprocesses
of ``manage.py rqworker``, on a queue of the suite's own, against daphne
processes and the SQLite database of ``live_site``.

Everything that reads or writes the database runs in those processes
(``manage.py shell -c`` included), never in pytest's, whose test database
the live processes cannot see.
"""

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from django.conf import settings
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.worker import Worker
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

from tests.conftest import PASSWORD, ROOT, LiveServer, LiveSite, free_port

QUEUE = settings.DASHIFY_JOB_QUEUE
WORKER_SECONDS = 60.0


def jobs_connection() -> redis.Redis:
    return redis.Redis.from_url(settings.DASHIFY_REDIS_URLS["jobs"])


# A burst worker logs this once the queue is empty, just before it exits.
DONE = "done, quitting"
# How long a worker that has said DONE may take to exit by itself.
EXIT_GRACE_SECONDS = 10.0


@dataclass
class WorkerProcess:
    """A burst worker running in the background, its output in a file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"the worker never logged {text!r}:\n{self.output()}")

    def finish(self, timeout: float = WORKER_SECONDS) -> int:
        """Wait until the burst worker has emptied the queue and exited."""
        self.wait_for_output(DONE, timeout)
        return self.process.wait(timeout=EXIT_GRACE_SECONDS)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Jobs:
    """
    The live site's job queue and workers. Tracks the jobs and workers it
    made so that teardown deletes exactly those and this queue's keys.
    """

    site: LiveSite
    queue: Queue
    job_ids: list[str] = field(default_factory=list)
    workers: list[WorkerProcess] = field(default_factory=list)

    def env(self, api_url: str, **overrides: str) -> dict[str, str]:
        return {
            **self.site.env,
            "DASHIFY_JOB_QUEUE": QUEUE,
            "DASHIFY_INTERNAL_API_URL": api_url,
            "PYTHONUNBUFFERED": "1",
            **overrides,
        }

    def shell(self, code: str, **env: str) -> str:
        """Run ``code`` in ``manage.py shell`` against the live database."""
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=ROOT,
            env={**self.site.env, "DASHIFY_JOB_QUEUE": QUEUE, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def shell_json(self, code: str, **env: str) -> Any:
        """Run ``code``, which prints one JSON document last, and decode it."""
        return json.loads(self.shell(code, **env).strip().splitlines()[-1])

    def enqueue(self, code: str, **env: str) -> str:
        """Run ``code``, which leaves the queued job in ``job``; return its id."""
        job_id = self.shell_json(
            f"{code}\nimport json; print(json.dumps(job.id))", **env
        )
        self.job_ids.append(job_id)
        return job_id

    def enqueue_reminders(self) -> str:
        return self.enqueue(
            "import django_rq\n"
            "from django.conf import settings\n"
            "from worker.jobs import send_due_reminders\n"
            "job = django_rq.get_queue(settings.DASHIFY_JOB_QUEUE)"
            ".enqueue(send_due_reminders)"
        )

    def start_worker(self, api_url: str, **env: str) -> WorkerProcess:
        name = f"{QUEUE}-{uuid.uuid4().hex}"
        log_path = self.site.tmp / f"worker-{name}.log"
        process = subprocess.Popen(
            [
                sys.executable, "manage.py", "rqworker", QUEUE,
                "--burst", "--name", name,
            ],
            cwd=ROOT,
            env=self.env(api_url, **env),
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        worker = WorkerProcess(name=name, process=process, log_path=log_path)
        self.workers.append(worker)
        return worker

    def run_worker(self, api_url: str, **env: str) -> WorkerProcess:
        """Work the queue until it is empty; fail if the worker exits non-zero."""
        worker = self.start_worker(api_url, **env)
        assert worker.finish() == 0, worker.output()
        return worker

    def job(self, job_id: str) -> Job:
        return Job.fetch(job_id, connection=self.queue.connection)

    def clean(self) -> None:
        registries = [
            self.queue.started_job_registry,
            self.queue.finished_job_registry,
            self.queue.failed_job_registry,
            self.queue.deferred_job_registry,
            self.queue.scheduled_job_registry,
            self.queue.canceled_job_registry,
        ]
        job_ids = set(self.job_ids) | set(self.queue.get_job_ids())
        for registry in registries:
            job_ids |= set(registry.get_job_ids())
        for job_id in job_ids:
            try:
                self.job(job_id).delete()
            except NoSuchJobError:
                pass
        self.queue.delete(delete_jobs=True)

        connection = self.queue.connection
        connection.delete(
            *(registry.key for registry in registries),
            self.queue.registry_cleaning_key,
            self.queue.intermediate_queue_key,
            *(Worker.redis_worker_namespace_prefix + w.name for w in self.workers),
        )


@pytest.fixture
def jobs(live_site: LiveSite) -> Iterator[Jobs]:
    connection = jobs_connection()
    queue = Queue(QUEUE, connection=connection)
    jobs = Jobs(site=live_site, queue=queue)
    jobs.clean()
    yield jobs
    for worker in jobs.workers:
        worker.stop()
    jobs.clean()
    connection.close()


@pytest.fixture
def unused_api_url() -> str:
    """An internal API address where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


# --- people on the live site ----------------------------------------------------------


class Visitor:
    """A browser stand-in: a cookie jar talking HTTP to one daphne process."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.http = requests.Session()

    def sign_in(self, username: str) -> "Visitor":
        self.http.get(self.url("/accounts/login/"), timeout=10)
        response = self.http.post(
            self.url("/accounts/login/"),
            {
                "username": username,
                "password": PASSWORD,
                "csrfmiddlewaretoken": self.csrf_token(),
            },
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 302, response.text
        return self

    def url(self, path: str) -> str:
        return self.server.url + path

    def csrf_token(self) -> str:
        token = self.http.cookies[settings.CSRF_COOKIE_NAME]
        assert token is not None
        return token

    def post(self, path: str) -> requests.Response:
        return self.http.post(
            self.url(path),
            headers={"X-CSRFToken": self.csrf_token()},
            allow_redirects=False,
            timeout=10,
        )

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.url(path), allow_redirects=False, timeout=10)

    def ws_token(self) -> str:
        response = self.post("/accounts/ws-token/")
        assert response.status_code == 200, response.text
        return response.json()["token"]


@asynccontextmanager
async def live_socket(
    visitor: Visitor, origin: str
) -> AsyncIterator[tuple[ClientConnection, dict[str, Any]]]:
    """Open the visitor's dashboard socket; yield it and its hello frame."""
    token = await asyncio.to_thread(visitor.ws_token)
    async with connect(
        f"{visitor.server.ws_url}?token={token}", origin=Origin(origin)
    ) as socket:
        hello = json.loads(await asyncio.wait_for(socket.recv(), timeout=5))
        assert hello["type"] == "hello"
        yield socket, hello


async def next_frame(
    socket: ClientConnection, frame_type: str, within: float = 5.0
) -> dict[str, Any]:
    """Return the next frame of ``frame_type``, skipping others."""
    async with asyncio.timeout(within):
        while True:
            frame = json.loads(await socket.recv())
            if frame["type"] == frame_type:
                return frame


async def send(socket: ClientConnection, frame: dict[str, Any]) -> None:
    await socket.send(json.dumps(frame))
