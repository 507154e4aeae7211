from http import HTTPStatus

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from realtime import selectors, services
from realtime.exceptions import Invalid, NotFound


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    tenant_id = request.user.tenant_id
    context = {
        "rooms": selectors.rooms_of(tenant_id),
        "boards": selectors.boards_of(tenant_id),
        "notifications": selectors.recent_notifications(request.user.pk),
        "unread": selectors.unread_count(request.user.pk),
    }
    return render(request, "realtime/dashboard.html", context)


@login_required
@require_POST
def move_card_view(request: HttpRequest, card_id: int) -> JsonResponse:
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
