from http import HTTPStatus

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from redis.exceptions import RedisError

from accounts.types import AuthenticatedRequest
from dashify.middleware import redis_unavailable_response
from realtime import selectors, services
from realtime.exceptions import Invalid, NotFound
from realtime.models import Export


@login_required
def dashboard(request: AuthenticatedRequest) -> HttpResponse:
    tenant_id = request.user.tenant_id
    context = {
        "rooms": selectors.rooms_of(tenant_id),
        "boards": selectors.boards_of(tenant_id),
        "notifications": selectors.recent_notifications(request.user.pk),
        "unread": selectors.unread_count(request.user.pk),
        "members": selectors.members_of(tenant_id),
    }
    return render(request, "realtime/dashboard.html", context)


@login_required
@require_POST
def move_card_view(request: AuthenticatedRequest, card_id: int) -> JsonResponse:
    """Move a card over HTTP (form fields ``column`` and ``position``)."""
    try:
        column = int(request.POST.get("column", ""))
        position = int(request.POST.get("position", ""))
    except ValueError:
        return JsonResponse({"error": "bad_request"}, status=HTTPStatus.BAD_REQUEST)
    try:
        services.move_card(
            tenant_id=request.user.tenant_id,
            card_id=card_id,
            column_id=column,
            position=position,
        )
    except NotFound:
        return JsonResponse({"error": "not_found"}, status=HTTPStatus.NOT_FOUND)
    except Invalid as error:
        return JsonResponse(
            {"error": "bad_request", "detail": str(error)},
            status=HTTPStatus.BAD_REQUEST,
        )
    return JsonResponse({"ok": True})


@login_required
@require_POST
def request_export_view(request: AuthenticatedRequest, board_id: int) -> HttpResponse:
    """Queue a CSV export of a board; a notification follows when it is ready."""
    from worker.jobs import enqueue_export

    try:
        export = services.request_export(user=request.user, board_id=board_id)
    except NotFound:
        return JsonResponse({"error": "not_found"}, status=HTTPStatus.NOT_FOUND)
    try:
        enqueue_export(export)
    except RedisError:
        # Nothing will ever build it; do not leave a pending row behind.
        export.delete()
        return redis_unavailable_response(request)
    return JsonResponse({"export": export.pk}, status=HTTPStatus.ACCEPTED)


@never_cache
@login_required
@require_GET
def download_export_view(request: AuthenticatedRequest, export_id: int) -> HttpResponse:
    """Serve a finished export to a signed-in member of the board's tenant."""
    export = (
        Export.objects.select_related("board")
        .filter(
            pk=export_id,
            board__tenant_id=request.user.tenant_id,
            status=Export.Status.READY,
        )
        .first()
    )
    if export is None:
        return HttpResponse("No such export.", status=HTTPStatus.NOT_FOUND)
    response = HttpResponse(export.content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
