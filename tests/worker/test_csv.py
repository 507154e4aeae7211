"""Exported cells cannot run as spreadsheet formulas, whatever the separator."""

import csv
import io
from collections.abc import Callable

import pytest

from accounts.models import User
from realtime import services
from realtime.models import Board, Card, Export
from worker.jobs import build_csv


@pytest.mark.django_db
def test_every_cell_is_quoted_and_formula_starts_are_neutralised(
    make_user: Callable[..., User],
) -> None:
    alice = make_user("alice")
    assignee = make_user("@sum")
    services.ensure_demo_content(alice.tenant)
    board = Board.objects.get(tenant=alice.tenant)
    card = Card.objects.filter(board=board).first()
    assert card is not None
    card.title = "=cmd|' /C calc'!A0"
    card.assignee = assignee
    card.save()
    Card.objects.create(
        board=board, column=card.column, title="x;=cmd|' /C calc'!A0", position=9
    )

    text = build_csv(Export.objects.create(board=board, requested_by=alice))

    lines = text.splitlines()
    assert all(line.startswith('"') and line.endswith('"') for line in lines)
    rows = list(csv.reader(io.StringIO(text)))
    titles = {row[1] for row in rows[1:]}
    assert "'=cmd|' /C calc'!A0" in titles
    assert "x;=cmd|' /C calc'!A0" in titles  # one quoted cell, never split
    assert "'@sum" in {row[4] for row in rows[1:]}
