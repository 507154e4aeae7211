from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from accounts import services
from accounts.models import User


class ThrottledModelBackend(ModelBackend):
    """
    Django's password check, refused outright for a username or address
    with too many recent failures (DASHIFY_LOGIN_MAX_FAILURES within
    DASHIFY_LOGIN_WINDOW). Every sign-in form goes through it, the admin's
    included; failures are counted by accounts.receivers.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        if request is not None and username is not None:
            address = request.META.get("REMOTE_ADDR", "")
            if services.login_throttled(username, address):
                # Stops the backend chain without checking the password.
                raise PermissionDenied
        user = super().authenticate(request, username, password, **kwargs)
        return user if isinstance(user, User) or user is None else None
