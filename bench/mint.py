"""
Token and id helper for the benchmarks: a Django process of its own, run as
``python -m bench.mint`` with the suite's environment and kept running for
the whole suite. It reads JSON requests on stdin, one a line, and answers
each with one line of JSON on stdout, until stdin closes.

``{"username": U, "session_key": K, "mint": {"valid": N, ...}}``
    Tokens for U's session K, by kind. "valid" tokens come from
    accounts.services.issue_ws_token, exactly as the token view mints them
    (signed and recorded as unspent in Redis). The forged kinds are signed
    with accounts.tokens.issue_token and are refused at the handshake for
    one reason each: "bad-signature" (another key), "expired" (lifetime
    over an hour ago) and "wrong-audience" (the internal API's audience,
    signed with the WebSocket key).
``{"username": U, "ids": true}``
    The id of the first room, board and card of U's tenant.
"""

import dataclasses
import json
import secrets
import sys
import time
from typing import Any

import django


def mint(username: str, session_key: str, counts: dict[str, int]) -> dict[str, Any]:
    from django.conf import settings

    from accounts import services, tokens
    from accounts.models import User

    user = User.objects.get(username=username)
    claims = {
        "sub": str(user.pk),
        "tid": user.tenant_id,
        "sid": services.session_binding(session_key),
    }
    ttl = settings.DASHIFY_WS_TOKEN_TTL
    now = int(time.time())
    kid = settings.DASHIFY_WS_TOKEN_KID
    secret = settings.DASHIFY_WS_TOKEN_SECRET
    forged = {
        "bad-signature": (tokens.WS_TOKEN, now, secrets.token_urlsafe(48)),
        "expired": (tokens.WS_TOKEN, now - ttl - 3600, secret),
        "wrong-audience": (
            dataclasses.replace(tokens.WS_TOKEN, audience="dashify:internal-api"),
            now,
            secret,
        ),
    }

    minted: dict[str, list[str]] = {}
    for kind, count in counts.items():
        if kind == "valid":
            minted[kind] = [
                services.issue_ws_token(user, session_key).token for _ in range(count)
            ]
            continue
        token_kind, issued_at, key = forged[kind]
        minted[kind] = [
            tokens.issue_token(
                token_kind, claims, now=issued_at, lifetime=ttl, secret=key, kid=kid
            ).token
            for _ in range(count)
        ]
    return {"tokens": minted}


def ids(username: str) -> dict[str, Any]:
    from accounts.models import User
    from realtime.models import Board, Card, Room

    user = User.objects.get(username=username)
    board = Board.objects.filter(tenant_id=user.tenant_id).order_by("id").first()
    room = Room.objects.filter(tenant_id=user.tenant_id).order_by("id").first()
    card = Card.objects.filter(board=board).order_by("id").first()
    if board is None or room is None or card is None:
        sys.exit(f"tenant of {username} has no demo room, board or card")
    return {"ids": {"room": room.pk, "board": board.pk, "card": card.pk}}


def main() -> None:
    django.setup()
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("ids"):
            answer = ids(request["username"])
        else:
            answer = mint(request["username"], request["session_key"], request["mint"])
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
