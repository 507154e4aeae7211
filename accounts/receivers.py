"""Keep the session index in step with Django's authentication events."""

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest

from accounts import services
from accounts.models import User
from accounts.services import EndReason


@receiver(user_logged_in)
def record_login(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    session = request.session
    if session.session_key is None:
        # login() flushed a session that belonged to a stale identity;
        # give the new one its key now so that it can be indexed.
        session.save()
    services.record_session(
        user_id=user.pk,
        session_key=session.session_key,
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
        ip_address=request.META.get("REMOTE_ADDR", ""),
    )


@receiver(post_save, sender=User)
def revoke_on_credential_change(sender: Any, instance: User, **kwargs: Any) -> None:
    # AbstractBaseUser.set_password() leaves the raw password in _password
    # until save() completes, which makes a password change visible here
    # whichever form, view, admin page or shell performed it.
    if instance._password is not None and not kwargs.get("created"):
        services.revoke_sessions(instance.pk, EndReason.PASSWORD_CHANGED)
    if not instance.is_active:
        services.revoke_sessions(instance.pk, EndReason.DEACTIVATED)


@receiver(post_delete, sender=User)
def revoke_on_delete(sender: Any, instance: User, **kwargs: Any) -> None:
    services.revoke_sessions(instance.pk, EndReason.DELETED)
