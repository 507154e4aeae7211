import logging
from typing import Any

from django.contrib.sessions.middleware import (
    SessionMiddleware as DjangoSessionMiddleware,
)
from django.http import HttpRequest, HttpResponse
from redis.exceptions import RedisError

from accounts import services
from dashify.middleware import REDIS_ERRORS, redis_unavailable_response

logger = logging.getLogger("dashify.accounts")


# A response carrying this attribute leaves the session cookie untouched.
KEEP_COOKIE = "dashify_keep_session_cookie"


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's session middleware, answering 503 when Redis is unreachable."""

    def process_response(self, request: HttpRequest, response: HttpResponse) -> Any:
        if getattr(response, KEEP_COOKIE, False):
            return response
        try:
            return super().process_response(request, response)
        except REDIS_ERRORS:
            logger.warning("Redis unreachable while saving a session")
            return redis_unavailable_response(request)


class LastSeenMiddleware:
    """Record when each signed-in session was last used, for the sessions page."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.session.session_key:
            return response
        try:
            if request.user.is_authenticated:
                services.touch_session(request.user.pk, request.session.session_key)
        except (RedisError, *REDIS_ERRORS):
            # Best effort: a missed "last seen" must not fail a page.
            logger.debug("could not record last-seen time")
        return response
