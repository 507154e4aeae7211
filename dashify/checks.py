"""Startup checks of Dashify's own configuration (``manage.py check``)."""

from typing import Any

import jwt
from django.conf import settings
from django.core.checks import Error, Warning, register

MIN_PYJWT = (2, 10, 0)


@register(deploy=True)
def check_token_secrets(app_configs: Any, **kwargs: Any) -> list[Error]:
    secrets = {
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "DASHIFY_WS_TOKEN_SECRET": settings.DASHIFY_WS_TOKEN_SECRET,
        "DASHIFY_SERVICE_TOKEN_SECRET": settings.DASHIFY_SERVICE_TOKEN_SECRET,
    }
    minimum = {"DJANGO_SECRET_KEY": settings.MIN_SECRET_KEY_BYTES}
    errors = [
        Error(
            f"{name} is shorter than "
            f"{minimum.get(name, settings.MIN_SECRET_BYTES)} bytes.",
            hint="Generate one with: python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'",
            id="dashify.E001",
        )
        for name, value in secrets.items()
        if len(value.encode()) < minimum.get(name, settings.MIN_SECRET_BYTES)
    ]
    if len(set(secrets.values())) != len(secrets):
        errors.append(
            Error(
                "The Django secret key and the two token secrets are not all "
                "different.",
                hint="Give each its own random value.",
                id="dashify.E002",
            )
        )
    return errors


@register()
def check_pyjwt_version(app_configs: Any, **kwargs: Any) -> list[Warning]:
    version = tuple(int(part) for part in jwt.__version__.split(".")[:3])
    if version < MIN_PYJWT:
        return [
            Warning(
                f"PyJWT {jwt.__version__} is older than "
                f"{'.'.join(map(str, MIN_PYJWT))}.",
                hint="Install the version pinned in requirements.txt.",
                id="dashify.W001",
            )
        ]
    return []
