import io
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from accounts.models import Tenant, User
from tests.accounts.support import sign_in
from tests.conftest import PASSWORD, ROOT

pytestmark = pytest.mark.django_db


def _seed_twice() -> list[tuple[int, int]]:
    counts = []
    for _ in range(2):
        call_command("seed_demo", stdout=io.StringIO())
        counts.append((Tenant.objects.count(), User.objects.count()))
    return counts


@override_settings(DEBUG=True, DASHIFY_DEMO_PASSWORD=PASSWORD)
def test_seeding_twice_creates_nothing_the_second_time() -> None:
    assert _seed_twice() == [(2, 4), (2, 4)]


@override_settings(DEBUG=True, DASHIFY_DEMO_PASSWORD=PASSWORD)
def test_seeding_puts_each_demo_person_in_their_tenant() -> None:
    _seed_twice()

    assert dict(User.objects.values_list("username", "tenant__slug")) == {
        "alice": "acme",
        "bob": "acme",
        "carol": "globex",
        "admin": "acme",
    }


@override_settings(DEBUG=True, DASHIFY_DEMO_PASSWORD=PASSWORD)
def test_seeding_makes_only_admin_a_superuser() -> None:
    _seed_twice()

    assert list(
        User.objects.filter(is_superuser=True, is_staff=True).values_list(
            "username", flat=True
        )
    ) == ["admin"]


@override_settings(DEBUG=True, DASHIFY_DEMO_PASSWORD=PASSWORD)
def test_seeded_people_sign_in_with_the_demo_password() -> None:
    _seed_twice()

    client = sign_in(User.objects.get(username="alice"))

    assert client.get("/").status_code == 200


@override_settings(DEBUG=True, DASHIFY_DEMO_PASSWORD=PASSWORD)
def test_seeding_again_keeps_a_changed_password() -> None:
    call_command("seed_demo", stdout=io.StringIO())
    alice = User.objects.get(username="alice")
    alice.set_password("a-password-of-her-own")
    alice.save()

    call_command("seed_demo", stdout=io.StringIO())

    assert User.objects.get(username="alice").check_password("a-password-of-her-own")


def test_seeding_refuses_when_debug_is_off() -> None:
    with pytest.raises(CommandError, match="runs only with DJANGO_DEBUG=1"):
        call_command("seed_demo", stdout=io.StringIO())

    assert User.objects.count() == 0


def test_the_seed_command_refuses_in_a_production_process(tmp_path: Path) -> None:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "DASHIFY_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "dashify.settings",
            "DJANGO_DEBUG": "0",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'seed.sqlite3'}",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
            "DASHIFY_WS_TOKEN_SECRET": secrets.token_urlsafe(48),
            "DASHIFY_SERVICE_TOKEN_SECRET": secrets.token_urlsafe(48),
        }
    )

    result = subprocess.run(
        [sys.executable, "manage.py", "seed_demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "CommandError: seed_demo creates accounts with a published password and "
        "runs only with DJANGO_DEBUG=1."
    )
    assert result.stdout == ""
