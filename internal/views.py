"""
The internal API: the only way background work changes anything. Reached
by the worker over the internal network; never routed by the public proxy.
"""

import json
from http import HTTPStatus
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.models import User
from internal import scopes
from internal.auth import service_token_required
from realtime import services
from realtime.exceptions import Invalid
from realtime.models import Export

IDEMPOTENCY_HEADER = "HTTP_IDEMPOTENCY_KEY"
MAX_IDEMPOTENCY_KEY = 100


def _json_body(request: HttpRequest) -> dict[str, Any]:
    body = json.loads(request.body)
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


def _positive_int(value: object) -> int:
    if type(value) is not int or value <= 0:
        raise ValueError("ids are positive integers")
    return value


def _idempotency_key(request: HttpRequest) -> str | None:
    value = request.META.get(IDEMPOTENCY_HEADER, "")
    if not value or len(value) > MAX_IDEMPOTENCY_KEY:
        return None
    return value


def _is_local_path(link: object) -> bool:
    # "//host/" and "/\\host/" start with a slash too, yet leave the site.
    return (
        isinstance(link, str)
        and link.startswith("/")
        and url_has_allowed_host_and_scheme(link, allowed_hosts=None)
    )


def _notification_scope(request: HttpRequest) -> str:
    body = _json_body(request)
    return scopes.notification_create(
        tenant_id=_positive_int(body.get("tenant")),
        user_id=_positive_int(body.get("user")),
    )


@require_POST
@service_token_required(_notification_scope)
def create_notification(request: HttpRequest) -> HttpResponse:
    """Notify one user; the Idempotency-Key header makes retries harmless."""
    body = _json_body(request)
    key = _idempotency_key(request)
    if key is None or not isinstance(body.get("text"), str):
        return JsonResponse({"error": "bad_request"}, status=HTTPStatus.BAD_REQUEST)
    user = User.objects.filter(
        pk=body["user"], tenant_id=body["tenant"], is_active=True
    ).first()
    if user is None:
        return JsonResponse({"error": "not_found"}, status=HTTPStatus.NOT_FOUND)

    link = body.get("link", "")
    try:
        notification, created = services.notify(
            user=user,
            text=body["text"],
            link=link if _is_local_path(link) else "",
            idempotency_key=key,
        )
    except Invalid:
        return JsonResponse({"error": "bad_request"}, status=HTTPStatus.BAD_REQUEST)
    return JsonResponse(
        {"id": notification.pk, "created": created},
        status=HTTPStatus.CREATED if created else HTTPStatus.OK,
    )


def _export_scope(request: HttpRequest, export_id: int) -> str | None:
    export = Export.objects.select_related("board").filter(pk=export_id).first()
    if export is None:
        return None
    return scopes.export_complete(tenant_id=export.board.tenant_id, export_id=export.pk)


@require_POST
@service_token_required(_export_scope)
def complete_export(request: HttpRequest, export_id: int) -> HttpResponse:
    """Store an export's CSV (the request body) and notify who asked for it."""
    if _idempotency_key(request) is None:
        return JsonResponse({"error": "bad_request"}, status=HTTPStatus.BAD_REQUEST)
    try:
        content = request.body.decode("utf-8")
    except UnicodeDecodeError:
        return JsonResponse({"error": "bad_request"}, status=HTTPStatus.BAD_REQUEST)

    export = services.complete_export(export_id=export_id, content=content)
    return JsonResponse({"id": export.pk, "status": export.status})
