"""
The worker's only way to change anything: HTTP calls into the internal
API, each with a service token minted for exactly that call.
"""

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TypeAlias

import requests
from django.conf import settings

from accounts import tokens
from dashify.redis import get_client, key
from internal import scopes

logger = logging.getLogger("dashify.worker")

REQUEST_TIMEOUT = 5.0

JSON: TypeAlias = (
    None | bool | int | float | str | Sequence["JSON"] | Mapping[str, "JSON"]
)


class APIUnavailable(Exception):
    """The internal API could not be reached or kept failing; retry later."""


class APIRefused(Exception):
    """The internal API refused the call (4xx); retrying will not help."""


def issue_service_token(scope: str) -> str:
    """
    Mint a single-use service token for one call with ``scope`` and record
    it as unspent in Redis (the API refuses tokens it finds no record of).
    """
    ttl = settings.DASHIFY_SERVICE_TOKEN_TTL
    issued = tokens.issue_token(
        tokens.SERVICE_TOKEN,
        {"iss": tokens.SERVICE_TOKEN.issuer, "scope": scope},
        now=int(time.time()),
        lifetime=ttl,
        secret=settings.DASHIFY_SERVICE_TOKEN_SECRET,
        kid=settings.DASHIFY_SERVICE_TOKEN_KID,
    )
    get_client("tokens").set(key("svc-jti", issued.jti), scopes.marker(scope), ex=ttl)
    return issued.token


def call(
    path: str,
    *,
    scope: str,
    idempotency_key: str,
    json: JSON = None,
    data: str | None = None,
    content_type: str = "application/json",
) -> dict[str, object]:
    """
    POST to the internal API and return the JSON answer.

    Unreachable API, timeouts and 5xx answers are retried with doubling
    pauses and a fresh token each time, under the same idempotency key, so
    a retry after a lost answer repeats nothing. Raises APIUnavailable when
    the attempts run out and APIRefused on a 4xx answer.
    """
    url = settings.DASHIFY_INTERNAL_API_URL + path
    pause = settings.DASHIFY_WORKER_BACKOFF
    last_problem = ""
    for attempt in range(1, settings.DASHIFY_WORKER_ATTEMPTS + 1):
        headers = {
            "Authorization": f"Bearer {issue_service_token(scope)}",
            "Idempotency-Key": idempotency_key,
            "Content-Type": content_type,
        }
        try:
            response = requests.post(
                url,
                json=json,
                data=data.encode() if data is not None else None,
                headers=headers,
                timeout=REQUEST_TIMEOUT,
            )
        except requests.RequestException as error:
            last_problem = f"unreachable ({type(error).__name__})"
        else:
            if response.status_code < 400:
                return response.json()
            if response.status_code < 500:
                raise APIRefused(
                    f"internal API answered {response.status_code} to {path}"
                )
            last_problem = f"answered {response.status_code}"

        logger.warning(
            "internal API %s on %s (attempt %s of %s)",
            last_problem,
            path,
            attempt,
            settings.DASHIFY_WORKER_ATTEMPTS,
        )
        if attempt < settings.DASHIFY_WORKER_ATTEMPTS:
            time.sleep(pause)
            pause *= 2
    raise APIUnavailable(f"internal API {last_problem} on {path}")
