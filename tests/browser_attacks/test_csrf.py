"""
Cross-site request forgery against every state-changing form and script
endpoint: a POST that carries the victim's cookies but no CSRF token, or
a token the attacker took from a session of their own, is refused with
403 and changes nothing. A control case sends the same POST with the
victim's own token and must take effect, which proves that the refusal
comes from the CSRF check and that each "changed nothing" check can see
the change it looks for.

Runs through the real middleware stack with a CSRF-enforcing test client.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from http import HTTPStatus
from typing import TYPE_CHECKING

import django_rq
import pytest
from django.conf import settings
from django.test import Client

from accounts.models import User
from accounts.services import session_binding
from dashify.redis import get_client, key
from realtime import services as realtime_services
from realtime.models import Board, Card, Export
from tests.conftest import (
    PASSWORD,
    session_exists,
    session_key_of,
    signed_in_client,
)

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

pytestmark = pytest.mark.usefixtures("fast_password_hashing")

NEW_PASSWORD = "a-new-and-unguessable-passphrase"  # noqa: S105


@dataclass
class Scene:
    """Alice (the victim) signed in twice; carol (the attacker) once."""

    alice: User
    carol: User
    make_user: Callable[..., User]

    @cached_property
    def victim(self) -> Client:
        return signed_in_client(self.alice)

    @cached_property
    def other_device(self) -> Client:
        """Alice's second session: what a forged revocation would end."""
        return signed_in_client(self.alice)

    @cached_property
    def attacker(self) -> Client:
        return signed_in_client(self.carol)

    @cached_property
    def admin(self) -> Client:
        return signed_in_client(
            self.make_user("root", is_staff=True, is_superuser=True)
        )

    @cached_property
    def visitor(self) -> Client:
        """A browser not signed in, holding the login page's CSRF cookie."""
        client = Client(enforce_csrf_checks=True)
        client.get("/accounts/login/")
        return client

    @cached_property
    def board(self) -> Board:
        realtime_services.ensure_demo_content(self.alice.tenant)
        return Board.objects.get(tenant=self.alice.tenant, name="Roadmap")

    @cached_property
    def card(self) -> Card:
        return self.board.cards.order_by("position")[0]

    def own_token(self, client: Client) -> str:
        return client.cookies[settings.CSRF_COOKIE_NAME].value


def _post(
    client: Client, path: str, data: dict[str, str], token: str | None
) -> "TestResponse":
    """POST as a page would, with the token in the form and the header."""
    if token is None:
        return client.post(path, data)
    return client.post(
        path, {**data, "csrfmiddlewaretoken": token}, headers={"X-CSRFToken": token}
    )


# --- the table ------------------------------------------------------------------------
# Each case: the browser the forged request rides, the request, and a check
# that holds while the request has had no effect.


@dataclass(frozen=True)
class Case:
    browser: Callable[[Scene], Client]
    path: Callable[[Scene], str]
    data: Callable[[Scene], dict[str, str]]
    unchanged: Callable[[Scene], bool]


def _no_session_for_the_victim_browser(scene: Scene) -> bool:
    return settings.SESSION_COOKIE_NAME not in scene.visitor.cookies


def _victim_signed_in(scene: Scene) -> bool:
    return session_exists(session_key_of(scene.victim))


def _no_token_minted(scene: Scene) -> bool:
    binding = session_binding(session_key_of(scene.victim))
    return get_client("tokens").exists(key("ws-sid", binding)) == 0


def _other_device_signed_in(scene: Scene) -> bool:
    return session_exists(session_key_of(scene.other_device))


def _password_unchanged(scene: Scene) -> bool:
    scene.alice.refresh_from_db()
    return scene.alice.check_password(PASSWORD)


def _no_export(scene: Scene) -> bool:
    return not Export.objects.filter(board=scene.board).exists()


def _card_unmoved(scene: Scene) -> bool:
    return Card.objects.get(pk=scene.card.pk).column_id == scene.card.column_id


CASES = {
    # Login CSRF: signing the victim's browser in to the attacker's account.
    "login": Case(
        browser=lambda s: s.visitor,
        path=lambda s: "/accounts/login/",
        data=lambda s: {"username": "carol", "password": PASSWORD},
        unchanged=_no_session_for_the_victim_browser,
    ),
    "logout": Case(
        browser=lambda s: s.victim,
        path=lambda s: "/accounts/logout/",
        data=lambda s: {},
        unchanged=_victim_signed_in,
    ),
    "token-mint": Case(
        browser=lambda s: s.victim,
        path=lambda s: "/accounts/ws-token/",
        data=lambda s: {},
        unchanged=_no_token_minted,
    ),
    "revoke-one-session": Case(
        browser=lambda s: s.victim,
        path=lambda s: "/accounts/sessions/",
        data=lambda s: {"session": session_binding(session_key_of(s.other_device))},
        unchanged=_other_device_signed_in,
    ),
    "revoke-other-sessions": Case(
        browser=lambda s: s.victim,
        path=lambda s: "/accounts/sessions/",
        data=lambda s: {"revoke_others": "1"},
        unchanged=_other_device_signed_in,
    ),
    "password-change": Case(
        browser=lambda s: s.victim,
        path=lambda s: "/accounts/password/",
        data=lambda s: {
            "old_password": PASSWORD,
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
        unchanged=_password_unchanged,
    ),
    "export-request": Case(
        browser=lambda s: s.victim,
        path=lambda s: f"/realtime/boards/{s.board.pk}/export/",
        data=lambda s: {},
        unchanged=_no_export,
    ),
    "card-move": Case(
        browser=lambda s: s.victim,
        path=lambda s: f"/realtime/cards/{s.card.pk}/move/",
        data=lambda s: {
            "column": str(s.board.columns.get(position=1).pk),
            "position": "0",
        },
        unchanged=_card_unmoved,
    ),
    "admin-revoke-all": Case(
        browser=lambda s: s.admin,
        path=lambda s: f"/admin/accounts/user/{s.alice.pk}/sessions/",
        data=lambda s: {"revoke_all": "1"},
        unchanged=_victim_signed_in,
    ),
}

# Where the forged request's token comes from: nowhere, or the attacker's
# own session (a real token, tied to another browser's CSRF cookie).
FORGED_TOKENS: dict[str, Callable[[Scene], str | None]] = {
    "no-token": lambda s: None,
    "another-sessions-token": lambda s: s.own_token(s.attacker),
}


@pytest.fixture
def scene(alice: User, carol: User, make_user: Callable[..., User]) -> Iterator[Scene]:
    scene = Scene(alice, carol, make_user)
    queue = django_rq.get_queue(settings.DASHIFY_JOB_QUEUE)
    queued_before = set(queue.job_ids)
    yield scene
    # An export accepted by the control case queued a job on the shared
    # Redis; remove exactly the jobs this test added.
    for job_id in set(queue.job_ids) - queued_before:
        job = queue.fetch_job(job_id)
        if job is not None:
            job.delete()


def _forge(scene: Scene, case: Case, token: str | None) -> "TestResponse":
    # Checking first signs in whoever the case needs before the request,
    # and proves the check holds to begin with.
    assert case.unchanged(scene), "the scene was not set up"
    return _post(case.browser(scene), case.path(scene), case.data(scene), token)


forged = pytest.mark.parametrize(
    ("case", "forged_token"),
    [
        pytest.param(case, token, id=f"{case_id}-{token_id}")
        for case_id, case in CASES.items()
        for token_id, token in FORGED_TOKENS.items()
    ],
)


@forged
def test_a_forged_post_is_refused_with_403(
    scene: Scene, case: Case, forged_token: Callable[[Scene], str | None]
) -> None:
    response = _forge(scene, case, forged_token(scene))

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert "CSRF verification failed. Request aborted." in response.content.decode()


@forged
def test_a_forged_post_changes_nothing(
    scene: Scene, case: Case, forged_token: Callable[[Scene], str | None]
) -> None:
    _forge(scene, case, forged_token(scene))

    assert case.unchanged(scene)


@pytest.mark.parametrize("case", [pytest.param(c, id=i) for i, c in CASES.items()])
def test_the_same_post_with_the_browsers_own_token_takes_effect(
    scene: Scene, case: Case
) -> None:
    browser = case.browser(scene)

    response = _forge(scene, case, scene.own_token(browser))

    assert response.status_code != HTTPStatus.FORBIDDEN
    assert not case.unchanged(scene)
