"""
Issue and verify Dashify's JWTs. Pure functions: no request, no Redis, no
settings; callers pass the clock and the keys.

Two kinds of token share this code and never each other's keys:

* WebSocket tokens, minted for a signed-in session and spent once at the
  socket handshake (``WS_TOKEN``);
* service tokens, minted by the worker for one call into the internal API
  (``SERVICE_TOKEN``).

Verification never raises on bad input: it returns a ``Refusal`` whose
value is a log-safe category. The algorithm is fixed here, per kind; the
token header is read only after the signature verifies, and then only to
check that it says what Dashify would have written.
"""

import base64
import binascii
import json
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt
from jwt.exceptions import InvalidSignatureError, PyJWTError

ALGORITHM = "HS256"
# HS256 signatures are 32 bytes: 43 base64url characters, no padding.
_COMPACT_FORM = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}")
_HEX_ID = re.compile(r"[0-9a-f]{32}")
_DECIMAL_ID = re.compile(r"[1-9][0-9]{0,18}")
MAX_TOKEN_LENGTH = 2048
ALLOWED_HEADER = frozenset({"alg", "typ", "kid"})

_jws = jwt.PyJWS(algorithms=[ALGORITHM])


class Refusal(StrEnum):
    """Why a token was refused. Safe to log; never shown to the client."""

    MALFORMED = "malformed"
    SIGNATURE = "bad-signature"
    HEADER = "bad-header"
    CLAIMS = "bad-claims"
    AUDIENCE = "wrong-audience"
    ISSUER = "wrong-issuer"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    ISSUED_IN_FUTURE = "issued-in-future"
    LIFETIME = "lifetime-too-long"


@dataclass(frozen=True)
class TokenKind:
    """What distinguishes one kind of token from another."""

    typ: str
    audience: str
    # Claim name -> "id" (decimal string), "int", "hex" (32 hex digits) or
    # "str". Every listed claim is required.
    claims: Mapping[str, str]
    # The only accepted "iss", for kinds that carry one.
    issuer: str | None = None


WS_TOKEN = TokenKind(
    typ="dashify-ws+jwt",
    audience="dashify:websocket",
    claims={
        "sub": "id",
        "tid": "int",
        "sid": "hex",
        "jti": "hex",
        "iat": "int",
        "nbf": "int",
        "exp": "int",
    },
)

SERVICE_TOKEN = TokenKind(
    typ="dashify-service+jwt",
    audience="dashify:internal-api",
    claims={
        "iss": "str",
        "scope": "str",
        "jti": "hex",
        "iat": "int",
        "nbf": "int",
        "exp": "int",
    },
    issuer="dashify-worker",
)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: int


def new_token_id() -> str:
    return secrets.token_hex(16)


def issue_token(
    kind: TokenKind,
    claims: Mapping[str, Any],
    *,
    now: int,
    lifetime: int,
    secret: str,
    kid: str,
) -> IssuedToken:
    """
    Sign ``claims`` as a token of ``kind`` valid from ``now`` for ``lifetime``
    seconds, adding the audience, times and a fresh ``jti``.
    """
    jti = new_token_id()
    payload = {
        **claims,
        "aud": kind.audience,
        "jti": jti,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
    }
    token = jwt.encode(
        payload,
        secret,
        algorithm=ALGORITHM,
        headers={"typ": kind.typ, "kid": kid},
    )
    return IssuedToken(token=token, jti=jti, expires_at=now + lifetime)


def verify_token(
    kind: TokenKind,
    token: object,
    *,
    now: int,
    secrets: Sequence[str],
    leeway: int,
    max_lifetime: int,
) -> dict[str, Any] | Refusal:
    """
    Return the verified claims of ``token``, or the reason it is refused.

    ``secrets`` are tried in order (current first, then those still accepted
    during a rotation); the header's ``kid`` does not choose among them.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        return Refusal.MALFORMED
    if not _COMPACT_FORM.fullmatch(token):
        return Refusal.MALFORMED

    verified = _verify_signature(token, secrets)
    if isinstance(verified, Refusal):
        return verified
    # JWTs are UTF-8 JSON (RFC 8725, 3.7). The JWS layer also accepts
    # UTF-16 and a byte-order mark; Dashify writes neither, so parse both
    # parts again, strictly.
    header = _parse_json(_b64url_decode(token.split(".", 1)[0]))
    if header is None:
        return Refusal.MALFORMED
    payload = verified

    if set(header) - ALLOWED_HEADER or header.get("typ") != kind.typ:
        return Refusal.HEADER
    if "kid" in header and not isinstance(header["kid"], str):
        return Refusal.HEADER

    claims = _parse_json(payload)
    if claims is None or not _claims_have_types(claims, kind.claims):
        return Refusal.CLAIMS
    if claims.get("aud") != kind.audience:
        return Refusal.AUDIENCE
    if kind.issuer is not None and claims.get("iss") != kind.issuer:
        return Refusal.ISSUER

    return _check_times(claims, now=now, leeway=leeway, max_lifetime=max_lifetime)


def _verify_signature(token: str, secrets: Iterable[str]) -> bytes | Refusal:
    for secret in secrets:
        try:
            decoded = _jws.decode_complete(token, secret, algorithms=[ALGORITHM])
        except InvalidSignatureError:
            continue
        except PyJWTError:
            # Undecodable header, an algorithm other than HS256 (including
            # "none"), or an unencoded-payload header: none can be Dashify's.
            return Refusal.MALFORMED
        return decoded["payload"]
    return Refusal.SIGNATURE


def _reject_constant(name: str) -> None:
    raise ValueError(name)


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A repeated claim is read differently by different parsers; refuse it.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("repeated member")
    return result


def _b64url_decode(segment: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None


def _parse_json(data: bytes | None) -> dict[str, Any] | None:
    """Parse a JSON object from strict UTF-8, refusing repeats and NaN."""
    if data is None:
        return None
    try:
        parsed = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_unique_object,
            parse_constant=_reject_constant,
        )
    except (ValueError, UnicodeDecodeError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _claims_have_types(claims: dict[str, Any], spec: Mapping[str, str]) -> bool:
    for name, shape in spec.items():
        value = claims.get(name)
        if shape == "int":
            ok = type(value) is int and 0 <= value < 2**53
        elif shape == "id":
            ok = isinstance(value, str) and bool(_DECIMAL_ID.fullmatch(value))
        elif shape == "hex":
            ok = isinstance(value, str) and bool(_HEX_ID.fullmatch(value))
        else:
            ok = isinstance(value, str) and 0 < len(value) <= 200
        if not ok:
            return False
    return True


def _check_times(
    claims: dict[str, Any], *, now: int, leeway: int, max_lifetime: int
) -> dict[str, Any] | Refusal:
    if now >= claims["exp"] + leeway:
        return Refusal.EXPIRED
    if claims["nbf"] > now + leeway:
        return Refusal.NOT_YET_VALID
    if claims["iat"] > now + leeway:
        return Refusal.ISSUED_IN_FUTURE
    if claims["exp"] - claims["iat"] > max_lifetime or claims["nbf"] < claims["iat"]:
        return Refusal.LIFETIME
    return claims
