"""
The controls behind every table: an unmutated forgery is a token Dashify
accepts on each surface, and so is one Dashify issued itself. Without
these, a refusal in the tables could be the workbench's mistake. And the
counts docs/security.md gives are the suite's.
"""

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT, mint_token
from tests.security.conftest import (
    ACCEPT,
    UNCHANGED,
    ApiSurface,
    Surface,
    WebSocketSurface,
)
from worker.api import issue_service_token

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("surface", ["ws", "api"], indirect=True)
def test_the_unmutated_forgery_is_accepted(surface: Surface) -> None:
    surface.check(surface.forge(UNCHANGED), ACCEPT)


@pytest.mark.parametrize("surface", ["ws"], indirect=True)
def test_a_token_from_the_mint_endpoint_is_accepted_on_the_websocket(
    surface: WebSocketSurface,
) -> None:
    token = mint_token(surface.client)

    outcome = surface.present(token)

    assert outcome.connected is True
    assert outcome.hello is not None
    assert outcome.hello["user"] == surface.alice.pk


@pytest.mark.parametrize("surface", ["api"], indirect=True)
def test_a_token_from_the_worker_is_accepted_by_the_api(surface: ApiSurface) -> None:
    token = issue_service_token(surface.scope)

    response = surface.present(token)

    assert response.status_code == 201


# A row of the counts table in docs/security.md: module, tests, socket, API, other.
COUNT_ROW = re.compile(
    r"^\|[^|]+\| `tests/security/(test_\w+\.py)` ((?:\| \d+ ){4})\|$",
    re.MULTILINE,
)


def collected_counts() -> dict[str, tuple[int, int, int, int]]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
        + ["--collect-only", "-q", "tests/security"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    counts: dict[str, list[int]] = {}
    for line in result.stdout.splitlines():
        if "::" not in line:
            continue
        module = line.split("::")[0].rsplit("/", 1)[-1]
        surface = re.search(r"\[(ws|api)[:\]]", line)
        column = {"ws": 1, "api": 2}[surface.group(1)] if surface else 3
        row = counts.setdefault(module, [0, 0, 0, 0])
        row[0] += 1
        row[column] += 1
    return {module: (a, b, c, d) for module, (a, b, c, d) in counts.items()}


def test_the_case_counts_in_docs_security_md_are_the_collected_ones() -> None:
    table = COUNT_ROW.findall((ROOT / "docs" / "security.md").read_text())
    documented = {
        module: tuple(int(n) for n in numbers.strip("| ").split(" | "))
        for module, numbers in table
    }

    assert documented == collected_counts()
