from http import HTTPStatus
from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors, services
from accounts.exceptions import RedisUnavailable
from accounts.middleware import KEEP_COOKIE
from accounts.receivers import KEEP_SESSION
from accounts.services import EndReason
from accounts.types import AuthenticatedRequest
from dashify.middleware import redis_unavailable_response


class LoginView(auth_views.LoginView):
    """
    Sign in. After DASHIFY_LOGIN_MAX_FAILURES failures for one username or
    one address within DASHIFY_LOGIN_WINDOW seconds, answer 429 until the
    window passes, without checking the password at all.
    """

    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def get_redirect_url(self, request: HttpRequest | None = None) -> str:
        # A "next" that leads back here would redirect a signed-in visitor
        # to this page forever (Django refuses that with an error).
        url = super().get_redirect_url()
        return "" if url.split("?", 1)[0] == self.request.path else url

    def dispatch(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        # Posted credentials always sign in afresh: a browser holding
        # somebody else's session (a planted cookie, say) must not skip
        # authentication and stay in that account.
        if request.method == "POST":
            self.redirect_authenticated_user = False
        return super().dispatch(request, *args, **kwargs)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username = request.POST.get("username", "")[:150]
        address = request.META.get("REMOTE_ADDR", "")
        if services.login_throttled(username, address):
            return render(
                request,
                self.template_name,
                {"throttled": True, "form": self.get_form()},
                status=HTTPStatus.TOO_MANY_REQUESTS,
            )
        # Failures are counted by accounts.receivers.count_login_failure.
        return super().post(request, *args, **kwargs)


class LogoutView(auth_views.LogoutView):
    """POST only (Django refuses GET with 405); deletes the session in Redis."""


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def sessions_view(request: AuthenticatedRequest) -> HttpResponse:
    """List the person's live sessions; POST revokes one or all others."""
    current = request.session.session_key
    if request.method == "POST":
        if "revoke_others" in request.POST:
            count = services.revoke_sessions(
                request.user.pk, EndReason.REVOKED, keep=current
            )
            messages.success(request, f"Signed out {count} other session(s).")
        else:
            target = request.POST.get("session", "")
            if current and target == services.session_binding(current):
                messages.error(request, "Use “Sign out” to end this session.")
            elif services.revoke_sessions(
                request.user.pk, EndReason.REVOKED, only=target
            ):
                messages.success(request, "Session signed out.")
            else:
                messages.error(request, "That session had already ended.")
        return redirect("accounts:sessions")

    sessions = selectors.live_sessions(request.user.pk, current)
    return render(request, "accounts/sessions.html", {"sessions": sessions})


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def password_change_view(request: AuthenticatedRequest) -> HttpResponse:
    """
    Change the password. Saving it ends every other session of the person
    (accounts.receivers); this one continues under a new key, and its
    sockets reconnect (close code 4002) with a fresh token.
    """
    form = PasswordChangeForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        setattr(form.user, KEEP_SESSION, request.session.session_key)
        user = form.save()
        update_session_auth_hash(request, user)
        messages.success(request, "Password changed. Other sessions were signed out.")
        return redirect("accounts:sessions")
    return render(request, "accounts/password_change.html", {"form": form})


@never_cache
@csrf_protect
@require_POST
def ws_token_view(request: HttpRequest) -> HttpResponse:
    """
    Mint a single-use WebSocket token for this session.

    401 JSON for anonymous callers (no redirect: this is called by script),
    503 JSON when the token cannot be recorded.
    """
    if not request.user.is_authenticated:
        response = JsonResponse(
            {"error": "not_authenticated", "detail": "Sign in first."},
            status=HTTPStatus.UNAUTHORIZED,
        )
        # A tab may ask with the cookie of a key that was just rotated,
        # while the new cookie is still arriving with another response;
        # expiring "the" session cookie here would sign the browser out.
        setattr(response, KEEP_COOKIE, True)
        return response
    # A session that authenticated the request was loaded by its key.
    session_key = cast(str, request.session.session_key)
    try:
        issued = services.issue_ws_token(request.user, session_key)
    except RedisUnavailable:
        return redis_unavailable_response(request)
    return JsonResponse(
        {"token": issued.token, "expires_in": settings.DASHIFY_WS_TOKEN_TTL},
        headers={"Cache-Control": "no-store"},
    )
