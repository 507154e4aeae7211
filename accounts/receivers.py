"""Keep the session index in step with Django's authentication events."""

from typing import Any, cast

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import post_delete, post_init, post_save
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
        # save() has given the session a key if it had none.
        session_key=cast(str, session.session_key),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
        ip_address=request.META.get("REMOTE_ADDR", ""),
    )


# The attribute a view sets on a user to keep the session that is changing
# the password signed in (accounts.views.password_change_view).
KEEP_SESSION = "_dashify_keep_session"


@receiver(post_init, sender=User)
def remember_credentials(sender: Any, instance: User, **kwargs: Any) -> None:
    instance._dashify_saved_password = instance.password  # type: ignore[attr-defined]
    instance._dashify_saved_tenant = instance.tenant_id  # type: ignore[attr-defined]


@receiver(user_login_failed)
def count_login_failure(
    sender: Any,
    credentials: dict[str, Any],
    request: HttpRequest | None = None,
    **kwargs: Any,
) -> None:
    if request is None:
        return
    services.record_login_failure(
        str(credentials.get("username", ""))[:150],
        request.META.get("REMOTE_ADDR", ""),
    )


@receiver(post_save, sender=User)
def revoke_on_credential_change(sender: Any, instance: User, **kwargs: Any) -> None:
    # Compare hashes rather than watch set_password(): this also catches
    # set_unusable_password() and a hash written directly, whichever form,
    # view, admin page or shell performed it.
    changed = instance.password != getattr(instance, "_dashify_saved_password", None)
    instance._dashify_saved_password = instance.password  # type: ignore[attr-defined]
    # check_password() re-hashes a correct password when the hasher's
    # parameters change and saves only that field: same secret, no revocation.
    rehashed = (
        kwargs.get("update_fields") == frozenset({"password"})
        # Django sets _password in set_password(); the stubs omit it.
        and instance._password is None  # type: ignore[attr-defined]
        and instance.has_usable_password()
    )
    if changed and not rehashed and not kwargs.get("created"):
        services.revoke_sessions(
            instance.pk,
            EndReason.PASSWORD_CHANGED,
            keep=getattr(instance, KEEP_SESSION, None),
        )
    if not instance.is_active:
        services.revoke_sessions(instance.pk, EndReason.DEACTIVATED)

    # Tokens and sockets carry the tenant they were opened for; a person
    # moved to another tenant must not keep the old one's view.
    moved = instance.tenant_id != getattr(instance, "_dashify_saved_tenant", None)
    instance._dashify_saved_tenant = instance.tenant_id  # type: ignore[attr-defined]
    if moved and not kwargs.get("created"):
        services.revoke_sessions(instance.pk, EndReason.TENANT_CHANGED)


@receiver(post_delete, sender=User)
def revoke_on_delete(sender: Any, instance: User, **kwargs: Any) -> None:
    services.revoke_sessions(instance.pk, EndReason.DELETED)
