"""
Startup under production settings, in subprocesses: settings are read once
per process, so only a fresh interpreter shows what a deployment sees.
"""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import ROOT

SECRET_NAMES = (
    "DJANGO_SECRET_KEY",
    "DASHIFY_WS_TOKEN_SECRET",
    "DASHIFY_SERVICE_TOKEN_SECRET",
)
# What the startup error message advises: secrets.token_urlsafe(48), which
# gives 64 characters.
GOOD_SECRETS = {name: secrets.token_urlsafe(48) for name in SECRET_NAMES}


def _production_env(tmp_path: Path, **overrides: str | None) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "DASHIFY_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "dashify.settings",
            "DJANGO_DEBUG": "0",
            "DJANGO_ALLOWED_HOSTS": "dashify.example.com",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'production.sqlite3'}",
            **GOOD_SECRETS,
        }
    )
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_deploy_check_passes_under_production_settings(tmp_path: Path) -> None:
    result = _manage(
        _production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING"
    )

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_startup_refuses_a_secret_key_that_djangos_deploy_check_calls_short(
    tmp_path: Path,
) -> None:
    # Django's deploy check (security.W009) wants 50 characters; a key that
    # startup accepts must not fail `check --deploy` later.
    env = _production_env(
        tmp_path, DJANGO_SECRET_KEY=GOOD_SECRETS["DJANGO_SECRET_KEY"][:48]
    )

    result = _manage(env, "check")

    assert result.returncode == 1
    assert (
        "ImproperlyConfigured: DJANGO_SECRET_KEY is shorter than 50 bytes; "
        "generate a longer one." in result.stderr
    )


def test_token_secrets_of_48_characters_pass_the_deploy_check(
    tmp_path: Path,
) -> None:
    env = _production_env(
        tmp_path,
        DASHIFY_WS_TOKEN_SECRET=GOOD_SECRETS["DASHIFY_WS_TOKEN_SECRET"][:48],
        DASHIFY_SERVICE_TOKEN_SECRET=GOOD_SECRETS["DASHIFY_SERVICE_TOKEN_SECRET"][:48],
    )

    result = _manage(env, "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_startup_without_a_secret_fails_naming_the_variable(
    tmp_path: Path, name: str
) -> None:
    result = _manage(_production_env(tmp_path, **{name: None}), "check")

    assert result.returncode == 1
    assert (
        f"ImproperlyConfigured: {name} is not set. With DJANGO_DEBUG=0 Dashify "
        "needs a random secret of at least " in result.stderr
    )
    assert (
        f"export {name}=\"$(python -c 'import secrets; "
        "print(secrets.token_urlsafe(48))')\"" in result.stderr
    )


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_startup_with_an_empty_secret_fails_naming_the_variable(
    tmp_path: Path, name: str
) -> None:
    result = _manage(_production_env(tmp_path, **{name: ""}), "check")

    assert result.returncode == 1
    assert f"ImproperlyConfigured: {name} is not set." in result.stderr


@pytest.mark.parametrize(
    "name", ["DASHIFY_WS_TOKEN_SECRET", "DASHIFY_SERVICE_TOKEN_SECRET"]
)
def test_startup_with_a_short_token_secret_fails_naming_the_variable(
    tmp_path: Path, name: str
) -> None:
    result = _manage(_production_env(tmp_path, **{name: "Zx8" * 10}), "check")

    assert result.returncode == 1
    assert (
        f"ImproperlyConfigured: {name} is shorter than 32 bytes; "
        "generate a longer one." in result.stderr
    )


@pytest.mark.parametrize(
    ("name", "dev_setting"),
    [
        ("DJANGO_SECRET_KEY", "DEV_SECRET_KEY"),
        ("DASHIFY_WS_TOKEN_SECRET", "DEV_WS_TOKEN_SECRET"),
        ("DASHIFY_SERVICE_TOKEN_SECRET", "DEV_SERVICE_TOKEN_SECRET"),
    ],
)
def test_startup_with_the_development_secret_fails_naming_the_variable(
    tmp_path: Path, name: str, dev_setting: str
) -> None:
    dev_value = getattr(settings, dev_setting)

    result = _manage(_production_env(tmp_path, **{name: dev_value}), "check")

    assert result.returncode == 1
    assert f"ImproperlyConfigured: {name} is not set." in result.stderr


def test_startup_with_equal_secrets_fails_naming_all_three(tmp_path: Path) -> None:
    shared = GOOD_SECRETS["DJANGO_SECRET_KEY"]
    env = _production_env(
        tmp_path, DASHIFY_WS_TOKEN_SECRET=shared, DASHIFY_SERVICE_TOKEN_SECRET=shared
    )

    result = _manage(env, "check")

    assert result.returncode == 1
    assert (
        "ImproperlyConfigured: DJANGO_SECRET_KEY, DASHIFY_WS_TOKEN_SECRET and "
        "DASHIFY_SERVICE_TOKEN_SECRET must all be different: a leak of one must "
        "not forge the others." in result.stderr
    )


def test_startup_with_two_equal_token_secrets_fails(tmp_path: Path) -> None:
    env = _production_env(
        tmp_path, DASHIFY_SERVICE_TOKEN_SECRET=GOOD_SECRETS["DASHIFY_WS_TOKEN_SECRET"]
    )

    result = _manage(env, "check")

    assert result.returncode == 1
    assert "must all be different" in result.stderr


def test_debug_is_off_when_django_debug_is_unset(tmp_path: Path) -> None:
    env = _production_env(tmp_path, DJANGO_DEBUG=None, DJANGO_SECRET_KEY=None)

    result = _manage(env, "check")

    assert result.returncode == 1
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY is not set." in result.stderr
