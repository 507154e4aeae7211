"""
The worker that ``manage.py rqworker`` builds (django_rq.get_worker, so
settings.RQ["WORKER_CLASS"] applies) stops promptly: a deployment's stop
signal or the end of a burst must not wait on a pub/sub thread.
"""

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import django_rq
import pytest
from redis.client import PubSub
from rq.worker import Worker

from tests.worker.conftest import QUEUE

STOP_SECONDS = 5.0


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never {what}")
        time.sleep(0.01)


def pubsub_of(worker: Worker) -> PubSub:
    assert worker.pubsub is not None, "the worker has not subscribed"
    return worker.pubsub


@pytest.fixture
def subscribed_worker() -> Iterator[Worker]:
    worker = django_rq.get_worker(QUEUE, name=f"{QUEUE}-{uuid.uuid4().hex}")
    worker.subscribe()
    wait_until(lambda: bool(pubsub_of(worker).subscribed), "subscribed")
    yield worker
    worker.connection.delete(worker.key)


def test_the_worker_stops_promptly_when_its_pubsub_thread_saw_the_unsubscribe_first(
    subscribed_worker: Worker,
) -> None:
    # Stopping sends UNSUBSCRIBE and then stops the pub/sub thread. When
    # the thread reads the reply first, it goes back to waiting up to 60 s
    # for a new subscription, and redis-py 8's stop() joins it without a
    # bound. Force that order instead of waiting for the race.
    pubsub_of(subscribed_worker).unsubscribe()
    wait_until(
        lambda: not pubsub_of(subscribed_worker).subscribed, "handled the unsubscribe"
    )

    stopper = threading.Thread(target=subscribed_worker.unsubscribe, daemon=True)
    stopper.start()
    stopper.join(STOP_SECONDS)

    assert not stopper.is_alive(), (
        f"the worker was still stopping after {STOP_SECONDS} s"
    )
