"""
Bearer authentication for the internal API with service tokens.

Refusals follow RFC 6750 and look the same whatever went wrong: 401 with
``WWW-Authenticate: Bearer ... error="invalid_token"`` for a bad token
(plain ``Bearer realm=...`` when none was sent), 403 with
``error="insufficient_scope"`` for a good token presented for another
operation or resource. The reason goes to the "dashify.security" log as a
category; the token and its claims go nowhere.
"""

import functools
import logging
import time
from collections.abc import Callable
from enum import StrEnum
from http import HTTPStatus
from typing import Any, cast

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from redis.exceptions import RedisError

from accounts import tokens
from dashify.middleware import redis_unavailable_response
from dashify.redis import get_client, key
from internal import scopes

security_logger = logging.getLogger("dashify.security")

REALM = "dashify-internal"
BEARER_PREFIX = "Bearer "


class ApiRefusal(StrEnum):
    NO_TOKEN = "no-token"  # noqa: S105 (a reason, not a secret)
    NOT_BEARER = "not-bearer"
    SCOPE = "insufficient-scope"
    REPLAYED = "replayed"


def _service_secrets() -> list[str]:
    return [
        settings.DASHIFY_SERVICE_TOKEN_SECRET,
        *settings.DASHIFY_SERVICE_TOKEN_PREVIOUS_SECRETS,
    ]


def _unauthorized(error: bool) -> HttpResponse:
    challenge = f'Bearer realm="{REALM}"'
    if error:
        challenge += ', error="invalid_token"'
    response = JsonResponse({"error": "invalid_token"}, status=HTTPStatus.UNAUTHORIZED)
    response["WWW-Authenticate"] = challenge
    return response


def _forbidden() -> HttpResponse:
    response = JsonResponse(
        {"error": "insufficient_scope"}, status=HTTPStatus.FORBIDDEN
    )
    response["WWW-Authenticate"] = f'Bearer realm="{REALM}", error="insufficient_scope"'
    return response


def _refuse(request: HttpRequest, reason: str) -> None:
    security_logger.warning(
        "internal api refused reason=%s path=%s", reason, request.path
    )


def spend_service_token(jti: str, scope: str) -> bool:
    """
    Spend a service token's single use; False if it was spent, never
    minted, or minted for another scope.
    """
    # The client does not decode responses, so a hit is bytes.
    recorded = cast(bytes | None, get_client("tokens").getdel(key("svc-jti", jti)))
    return recorded is not None and recorded.decode() == scopes.marker(scope)


def service_token_required(
    scope_for: Callable[..., str | None],
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """
    Protect an internal view with a single-use service token.

    ``scope_for(request, **view_kwargs)`` returns the one scope the request
    needs, None if the request names no such resource (404), or raises
    ValueError for a malformed request (400); it runs only after the token
    itself verified. Session cookies are ignored.
    """

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @functools.wraps(view)
        def wrapped(request: HttpRequest, **kwargs: Any) -> HttpResponse:
            header = request.META.get("HTTP_AUTHORIZATION", "")
            if not header:
                _refuse(request, ApiRefusal.NO_TOKEN)
                return _unauthorized(error=False)
            # The scheme name is case-insensitive (RFC 9110, 11.1).
            if header[: len(BEARER_PREFIX)].lower() != BEARER_PREFIX.lower():
                _refuse(request, ApiRefusal.NOT_BEARER)
                return _unauthorized(error=True)

            claims = tokens.verify_token(
                tokens.SERVICE_TOKEN,
                header[len(BEARER_PREFIX) :],
                now=int(time.time()),
                secrets=_service_secrets(),
                leeway=settings.DASHIFY_WS_TOKEN_LEEWAY,
                max_lifetime=settings.SERVICE_TOKEN_MAX_LIFETIME,
            )
            if isinstance(claims, tokens.Refusal):
                _refuse(request, claims)
                return _unauthorized(error=True)

            try:
                needed = scope_for(request, **kwargs)
            except ValueError:
                return JsonResponse(
                    {"error": "bad_request"}, status=HTTPStatus.BAD_REQUEST
                )
            if needed is None:
                return JsonResponse({"error": "not_found"}, status=HTTPStatus.NOT_FOUND)
            if claims["scope"] != needed:
                _refuse(request, ApiRefusal.SCOPE)
                return _forbidden()

            try:
                spent = spend_service_token(claims["jti"], claims["scope"])
            except RedisError:
                return redis_unavailable_response(request)
            if not spent:
                _refuse(request, ApiRefusal.REPLAYED)
                return _unauthorized(error=True)
            return view(request, **kwargs)

        return wrapped

    return decorate
