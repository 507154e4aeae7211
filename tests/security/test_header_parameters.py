"""
Header parameters are never trusted (RFC 8725 section 3.10; the OWASP JWT
cheat sheet; jwt_tool's -X s, -X i and kid-injection modes). No key named
or embedded in a header is fetched or used, ``kid`` never chooses the key
and cannot inject anything, and any member Dashify does not write itself
makes a token invalid even when the signature is right.
"""

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from accounts.models import User
from tests.security.conftest import (
    ACCEPTED,
    DROP,
    RSA_KEY,
    RSA_PUBLIC_PEM,
    Case,
    Expect,
    Mutation,
    Surface,
    b64url,
    hs,
    no_signature,
    on_both,
    other_secret,
    refused,
    rs256,
    to_json,
)

pytestmark = pytest.mark.django_db(transaction=True)

MALFORMED = refused("malformed")
BAD_SIG = refused("bad-signature")
BAD_HEADER = refused("bad-header")

ATTACKER_KEY = "an-attacker-chosen-key-long-enough-for-any-library-0123456789"
ATTACKER_JWK = {"kty": "oct", "k": b64url(ATTACKER_KEY.encode())}


def attacker_certificate() -> str:
    """A self-signed certificate for the attacker's RSA key, as x5c carries it."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dashify-attacker")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(RSA_KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(RSA_KEY, hashes.SHA256())
    )
    der = certificate.public_bytes(serialization.Encoding.DER)
    return base64.b64encode(der).decode()


X5C = [attacker_certificate()]


def rsa_public_jwk() -> dict[str, str]:
    numbers = RSA_KEY.public_key().public_numbers()
    return {
        "kty": "RSA",
        "e": b64url(numbers.e.to_bytes(3, "big")),
        "n": b64url(numbers.n.to_bytes(256, "big")),
    }


def nested(claims: dict[str, object]) -> bytes:
    """A payload that is itself a compact token, unsigned, as cty=JWT announces."""
    return f"{b64url(to_json({'alg': 'none'}))}.{b64url(to_json(claims))}.".encode()


def listener_url(surface: Surface) -> str:
    return surface.listener.url


def header(**members: object) -> Mutation:
    """Changed header members, HS256 under the right secret."""
    return Mutation(header=members)


def attacker(**members: object) -> Mutation:
    """Extra header members, HS256 under the attacker's key."""
    return Mutation(header=members, sign=hs(ATTACKER_KEY))


def rs256_with(**members: object) -> Mutation:
    return Mutation(header={"alg": "RS256", **members}, sign=rs256)


# fmt: off
KEY_SOURCE_CASES: list[Case] = [
    ("jwk-oct-signed-with-embedded-key", attacker(jwk=ATTACKER_JWK), BAD_SIG),
    ("jwk-oct-right-secret", header(jwk=ATTACKER_JWK), BAD_HEADER),
    ("jwk-rsa-rs256", rs256_with(jwk=rsa_public_jwk()), MALFORMED),
    ("jwk-rsa-hs256-under-its-pem",
     Mutation(header={"jwk": rsa_public_jwk()}, sign=hs(RSA_PUBLIC_PEM)), BAD_SIG),
    ("jku-attacker-key", attacker(jku=listener_url), BAD_SIG),
    ("jku-right-secret", header(jku=listener_url), BAD_HEADER),
    ("jku-rs256", rs256_with(jku=listener_url), MALFORMED),
    ("jku-with-kid-attacker-key", attacker(jku=listener_url, kid="attacker"), BAD_SIG),
    ("x5u-attacker-key", attacker(x5u=listener_url), BAD_SIG),
    ("x5u-right-secret", header(x5u=listener_url), BAD_HEADER),
    ("x5u-rs256", rs256_with(x5u=listener_url), MALFORMED),
    ("x5c-rs256-self-signed", rs256_with(x5c=X5C), MALFORMED),
    ("x5c-attacker-key", attacker(x5c=X5C), BAD_SIG),
    ("x5c-right-secret", header(x5c=X5C), BAD_HEADER),
    ("x5t-right-secret", header(x5t="bm90LWEtdGh1bWJwcmludA"), BAD_HEADER),
]

# (id, kid, key the attacker signs with). Each kid tries to make a naive
# key lookup return a value the attacker knows: an empty file, a row of
# their choosing, the output of a command.
INJECTED_KIDS: list[tuple[str, object, str]] = [
    ("path-traversal-to-dev-null", "../../../../dev/null", ""),
    ("absolute-dev-null", "/dev/null", ""),
    ("path-traversal-doubled-dots", "....//....//....//dev/null", ""),
    ("path-traversal-encoded", "..%2F..%2F..%2F..%2Fdev%2Fnull", ""),
    ("file-url", "file:///dev/null", ""),
    ("nul-truncated-path", "ws-1\x00/../../../../dev/null", ""),
    ("sql-or-true", "' OR 1=1 --", "1"),
    ("sql-union-select", "x' UNION SELECT 'attacker' --", "attacker"),
    ("sql-stacked-drop", "1; DROP TABLE accounts_user; --", ""),
    ("shell-substitution", lambda s: f"$(touch {s.canary})", ATTACKER_KEY),
    ("shell-backticks", lambda s: f"`touch {s.canary}`", ATTACKER_KEY),
    ("shell-semicolon", lambda s: f"ws-1; touch {s.canary}", ATTACKER_KEY),
    ("shell-pipe", lambda s: f"ws-1 | touch {s.canary}", ATTACKER_KEY),
    ("shell-and", lambda s: f"ws-1 && touch {s.canary}", ATTACKER_KEY),
    ("shell-id-backticks", "`id`", "uid=0(root) gid=0(root) groups=0(root)"),
    ("shell-id-substitution", "$(id)", "uid=0(root) gid=0(root) groups=0(root)"),
    ("template-expression", "{{7*7}}", "49"),
    ("lookup-expression", lambda s: "${jndi:ldap://" + s.listener.url[7:] + "}",
     ATTACKER_KEY),
    ("very-long", "k" * 600, ATTACKER_KEY),
]

HEADER_MEMBER_CASES: list[Case] = [
    ("crit-exp", header(crit=["exp"]), MALFORMED),
    ("crit-empty-list", header(crit=[]), MALFORMED),
    ("crit-string", header(crit="exp"), MALFORMED),
    ("crit-number-in-list", header(crit=[1]), MALFORMED),
    ("crit-null", header(crit=None), MALFORMED),
    ("crit-b64-without-b64", header(crit=["b64"]), MALFORMED),
    ("b64-false", header(b64=False), MALFORMED),
    ("b64-false-declared-critical", header(b64=False, crit=["b64"]), MALFORMED),
    ("b64-false-detached-payload", Mutation(
        header={"b64": False, "crit": ["b64"]},
        segments=lambda parts: [parts[0], ""]), MALFORMED),
    ("b64-true", header(b64=True), BAD_HEADER),
    ("typ-jwt", header(typ="JWT"), BAD_HEADER),
    ("typ-jwt-lower-case", header(typ="jwt"), BAD_HEADER),
    ("typ-access-token", header(typ="at+jwt"), BAD_HEADER),
    ("typ-own-upper-case", header(typ=lambda s: s.kind.typ.upper()), BAD_HEADER),
    ("typ-own-with-media-prefix", header(typ=lambda s: "application/" + s.kind.typ),
     BAD_HEADER),
    ("typ-own-trailing-space", header(typ=lambda s: s.kind.typ + " "), BAD_HEADER),
    ("typ-other-kind", header(typ=lambda s: s.other_kind.typ), BAD_HEADER),
    ("typ-empty", header(typ=""), BAD_HEADER),
    ("typ-null", header(typ=None), BAD_HEADER),
    ("typ-number", header(typ=1), BAD_HEADER),
    ("typ-list", header(typ=lambda s: [s.kind.typ]), BAD_HEADER),
    ("typ-absent", Mutation(header={"typ": DROP}), BAD_HEADER),
    ("cty-jwt", header(cty="JWT"), BAD_HEADER),
    ("cty-jwt-nested-token", Mutation(header={"cty": "JWT"}, payload_json=nested),
     BAD_HEADER),
    ("cty-json", header(cty="json"), BAD_HEADER),
    ("zip-deflate", header(zip="DEF"), BAD_HEADER),
    ("enc-member", header(enc="A256GCM"), BAD_HEADER),
    ("iss-in-header", header(iss="dashify-worker"), BAD_HEADER),
    ("url-member", header(url=listener_url), BAD_HEADER),
    ("nonce-member", header(nonce="abc"), BAD_HEADER),
    ("repeated-alg-none-last-unsigned", Mutation(
        header_json=lambda h: to_json(h)[:-1] + b',"alg":"none"}', sign=no_signature),
        MALFORMED),
    ("repeated-alg-hs256-last-attacker-key", Mutation(
        header={"alg": "none"}, sign=hs(ATTACKER_KEY),
        header_json=lambda h: to_json(h)[:-1] + b',"alg":"HS256"}'), BAD_SIG),
]

NON_STRING_KIDS: list[tuple[str, object]] = [
    ("int", 7),
    ("negative-int", -1),
    ("float", 1.5),
    ("true", True),
    ("null", None),
    ("empty-list", []),
    ("list-of-the-right-kid", ["ws-1"]),
    ("object", {"path": "/dev/null"}),
]

KID_CHOICE_CASES: list[Case] = [
    ("unknown-kid-right-secret", header(kid="ws-999"), ACCEPTED),
    ("no-kid-right-secret", Mutation(header={"kid": DROP}), ACCEPTED),
    ("traversal-kid-right-secret", header(kid="../../../../dev/null"), ACCEPTED),
    ("other-kinds-kid-right-secret", header(kid=lambda s: s.other_kid), ACCEPTED),
    ("own-kid-other-kinds-secret",
     Mutation(header={"kid": lambda s: s.kid}, sign=hs(other_secret)), BAD_SIG),
    ("empty-kid-empty-secret", Mutation(header={"kid": ""}, sign=hs("")), BAD_SIG),
]
# fmt: on


@pytest.mark.parametrize(
    ("surface", "mutation", "expect"), on_both(KEY_SOURCE_CASES), indirect=["surface"]
)
def test_a_key_named_or_embedded_in_the_header_is_neither_fetched_nor_used(
    surface: Surface, mutation: Mutation, expect: Expect
) -> None:
    surface.attack(mutation, expect)

    assert surface.listener.connections_so_far() == 0


@pytest.mark.parametrize(
    ("surface", "kid", "secret"),
    [
        pytest.param(name, kid, secret, id=f"{name}:{case}")
        for case, kid, secret in INJECTED_KIDS
        for name in ("ws", "api")
    ],
    indirect=["surface"],
)
def test_an_injected_kid_is_refused_at_once_and_runs_nothing(
    surface: Surface, kid: object, secret: str
) -> None:
    surface.attack(Mutation(header={"kid": kid}, sign=hs(secret)), BAD_SIG)

    assert surface.elapsed < 1.0
    assert not surface.canary.exists()
    assert surface.listener.connections_so_far() == 0
    assert User.objects.filter(pk=surface.alice.pk).exists()


@pytest.mark.parametrize(
    ("surface", "kid"),
    [
        pytest.param(name, kid, id=f"{name}:kid-{case}")
        for case, kid in NON_STRING_KIDS
        for name in ("ws", "api")
    ],
    indirect=["surface"],
)
def test_a_kid_that_is_not_a_string_is_refused_even_with_the_right_secret(
    surface: Surface, kid: object
) -> None:
    surface.attack(Mutation(header={"kid": kid}), MALFORMED)


@pytest.mark.parametrize(
    ("surface", "mutation", "expect"), on_both(KID_CHOICE_CASES), indirect=["surface"]
)
def test_kid_never_chooses_the_key(
    surface: Surface, mutation: Mutation, expect: Expect
) -> None:
    surface.attack(mutation, expect)


@pytest.mark.parametrize(
    ("surface", "mutation", "expect"),
    on_both(HEADER_MEMBER_CASES),
    indirect=["surface"],
)
def test_a_header_member_dashify_does_not_write_is_refused(
    surface: Surface, mutation: Mutation, expect: Expect
) -> None:
    surface.attack(mutation, expect)

    assert surface.listener.connections_so_far() == 0
