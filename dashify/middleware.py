"""Turn an unreachable Redis into a plain 503 page instead of a 500."""

import logging
from collections.abc import Callable
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dashify.exceptions import RedisUnavailable

logger = logging.getLogger("dashify")

REDIS_ERRORS = (
    RedisUnavailable,
    ConnectionInterrupted,
    RedisConnectionError,
    RedisTimeoutError,
)
RETRY_AFTER_SECONDS = 5
# Paths called by scripts and services, which get JSON instead of a page.
JSON_PATHS = ("/accounts/ws-token/", "/internal/", "/realtime/")


def redis_unavailable_response(request: HttpRequest) -> HttpResponse:
    """Render the 503 page (plain text for JSON callers)."""
    if request.path.startswith(JSON_PATHS):
        response: HttpResponse = HttpResponse(
            '{"error": "unavailable", "detail": "Redis is unreachable; retry later."}',
            content_type="application/json",
            status=HTTPStatus.SERVICE_UNAVAILABLE,
        )
    else:
        response = HttpResponse(
            render_to_string("503.html"), status=HTTPStatus.SERVICE_UNAVAILABLE
        )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    # Logged once, at WARNING, by the caller; Django would add an ERROR
    # line for every 5xx, and ERROR is kept for Dashify's own bugs.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


class RedisOutageMiddleware:
    """
    Answer 503 when a view (or the session it loads) cannot reach Redis.

    Errors raised by the session middleware itself never reach here: they
    are handled by accounts.middleware.SessionMiddleware with the same page.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponse | None:
        if not isinstance(exception, REDIS_ERRORS):
            return None
        logger.warning("Redis unreachable while serving %s", request.path)
        return redis_unavailable_response(request)


JOB_QUEUE_ADMIN = "/admin/django_rq/"


class JobQueueAdminGuard:
    """
    Keep the job-queue pages to superusers. They list every tenant's jobs
    and can empty queues, while django-rq admits any staff member.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(JOB_QUEUE_ADMIN):
            user = getattr(request, "user", None)
            if user is not None and user.is_staff and not user.is_superuser:
                return HttpResponse(
                    "The job queues are for superusers.",
                    status=HTTPStatus.FORBIDDEN,
                )
        return self.get_response(request)
