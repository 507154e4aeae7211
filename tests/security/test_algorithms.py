"""
Algorithm and signature attacks (RFC 8725 sections 2.1 and 3.1; jwt_tool's
"alg none", key-confusion and weak-secret modes): only HS256 under the
surface's own secret, or a previous secret still accepted during a
rotation, opens either door, whatever the header claims.
"""

import hashlib
from collections.abc import Callable

import pytest
from django.conf import settings
from django.test import override_settings

from tests.security.conftest import (
    ACCEPT,
    DROP,
    EC_PUBLIC_PEM,
    RSA_PUBLIC_DER,
    RSA_PUBLIC_PEM,
    Case,
    Expect,
    KeyRef,
    Mutation,
    Signer,
    Surface,
    b64url,
    b64url_decode,
    es256,
    hs,
    no_signature,
    on_both,
    other_secret,
    refused,
    rs256,
)

pytestmark = pytest.mark.django_db(transaction=True)

MALFORMED = refused("malformed")
BAD_SIG = refused("bad-signature")


def signature_edit(change: Callable[[bytes], bytes]) -> Mutation:
    """Edit the decoded signature bytes of a finished token."""

    def edit(token: str) -> str:
        head, signature = token.rsplit(".", 1)
        return f"{head}.{b64url(change(b64url_decode(signature)))}"

    return Mutation(edit=edit)


def flip(index: int) -> Mutation:
    def change(signature: bytes) -> bytes:
        raw = bytearray(signature)
        raw[index] ^= 0x01
        return bytes(raw)

    return signature_edit(change)


def key(ref: KeyRef) -> Mutation:
    """HS256, as Dashify signs, but under another key."""
    return Mutation(sign=hs(ref))


def alg(name: object, sign: Signer | None = None) -> Mutation:
    """Another "alg" in the header, signed by ``sign`` (right-key HS256 if None)."""
    return Mutation(header={"alg": name}, sign=sign or hs())


def signature_of_other_claims(signing_input: bytes, surface: Surface) -> bytes:
    """A genuine signature, under the right secret, of other claims."""
    header = signing_input.split(b".")[0]
    return hs()(header + b"." + b64url(b'{"sub":"1"}').encode(), surface)


NONE_SPELLINGS = {
    "none": "none",
    "None": "None",
    "NONE": "NONE",
    "nOnE": "nOnE",
    "nonE": "nonE",
    "none ": "none-trailing-space",
    " none": "none-leading-space",
    "none\x00": "none-nul",
}

# How an alg=none token ends: nothing after the second dot, no second dot,
# or the genuine HS256 signature left in place.
NONE_ENDINGS: dict[str, Mutation] = {
    "empty-signature": Mutation(sign=no_signature),
    "no-signature-segment": Mutation(sign=no_signature, edit=lambda t: t[:-1]),
    "right-signature-kept": Mutation(),
}

NONE_CASES: list[Case] = [
    (
        f"alg-{name}-{ending}",
        Mutation(header={"alg": spelling}, sign=base.sign, edit=base.edit),
        MALFORMED,
    )
    for spelling, name in NONE_SPELLINGS.items()
    for ending, base in NONE_ENDINGS.items()
]

WEAK_SECRETS = [
    "",
    "secret",
    "password",
    "changeme",
    "dashify",
    "123456",
    "your-256-bit-secret",
    "key",
    "jwt",
    "admin",
    "test",
    "null",
]

RETIRED_SECRET = "a-secret-that-signed-tokens-before-the-last-rotation"

# fmt: off
SIGNATURE_CASES: list[Case] = [
    ("signature-empty", Mutation(sign=no_signature), MALFORMED),
    ("signature-first-byte-flipped", flip(0), BAD_SIG),
    ("signature-middle-byte-flipped", flip(16), BAD_SIG),
    ("signature-last-byte-flipped", flip(31), BAD_SIG),
    ("signature-all-zero-bytes", Mutation(sign=lambda data, s: bytes(32)), BAD_SIG),
    ("signature-of-other-claims", Mutation(sign=signature_of_other_claims), BAD_SIG),
    ("signature-one-character-short", Mutation(edit=lambda t: t[:-1]), MALFORMED),
    ("signature-one-character-long", Mutation(edit=lambda t: t + "A"), MALFORMED),
    ("signature-one-byte-short", signature_edit(lambda s: s[:-1]), MALFORMED),
    ("signature-first-half", signature_edit(lambda s: s[:16]), MALFORMED),
    ("signature-doubled", signature_edit(lambda s: s + s), MALFORMED),
    ("other-component-secret", key(other_secret), BAD_SIG),
    ("django-secret-key", key(settings.SECRET_KEY), BAD_SIG),
    ("retired-secret", key(RETIRED_SECRET), BAD_SIG),
    ("own-secret-upper-case", key(lambda s: s.secret.upper()), BAD_SIG),
    ("own-secret-with-newline", key(lambda s: s.secret + "\n"), BAD_SIG),
    ("own-secret-less-last-character", key(lambda s: s.secret[:-1]), BAD_SIG),
    *[(f"weak-secret-{name or 'empty'}", key(name), BAD_SIG) for name in WEAK_SECRETS],
]

ALGORITHM_CASES: list[Case] = [
    ("hs384-right-secret", alg("HS384", hs(digest=hashlib.sha384)), MALFORMED),
    ("hs512-right-secret", alg("HS512", hs(digest=hashlib.sha512)), MALFORMED),
    ("hs384-header-hs256-signature", alg("HS384"), MALFORMED),
    ("hs256-lower-case", alg("hs256"), MALFORMED),
    ("hs256-trailing-space", alg("HS256 "), MALFORMED),
    ("alg-absent", Mutation(header={"alg": DROP}), MALFORMED),
    ("alg-null", alg(None), MALFORMED),
    ("alg-empty", alg(""), MALFORMED),
    ("alg-list", alg(["HS256"]), MALFORMED),
    ("alg-object", alg({"name": "HS256"}), MALFORMED),
    ("alg-number", alg(256), MALFORMED),
    ("rs256-real-signature", alg("RS256", rs256), MALFORMED),
    ("es256-real-signature", alg("ES256", es256), MALFORMED),
    ("ps256-header-hmac-signature", alg("PS256"), MALFORMED),
    ("rs256-header-hmac-under-public-pem", alg("RS256", hs(RSA_PUBLIC_PEM)), MALFORMED),
    # The classic key confusion: a verifier that let the token choose the
    # algorithm would check this HMAC with its RSA public key as the secret.
    ("hs256-under-rsa-public-pem", key(RSA_PUBLIC_PEM), BAD_SIG),
    ("hs256-under-rsa-public-pem-stripped", key(RSA_PUBLIC_PEM.strip()), BAD_SIG),
    ("hs256-under-rsa-public-der", key(RSA_PUBLIC_DER), BAD_SIG),
    ("hs256-under-ec-public-pem", key(EC_PUBLIC_PEM), BAD_SIG),
]
# fmt: on

PREVIOUS_SECRETS = {
    "ws": "DASHIFY_WS_TOKEN_PREVIOUS_SECRETS",
    "api": "DASHIFY_SERVICE_TOKEN_PREVIOUS_SECRETS",
}
OTHER_SURFACE = {"ws": "api", "api": "ws"}


@pytest.mark.parametrize(
    ("surface", "mutation", "expect"), on_both(NONE_CASES), indirect=["surface"]
)
def test_an_unsigned_token_is_refused_in_every_spelling_of_none(
    surface: Surface, mutation: Mutation, expect: Expect
) -> None:
    surface.attack(mutation, expect)


@pytest.mark.parametrize(
    ("surface", "mutation", "expect"), on_both(SIGNATURE_CASES), indirect=["surface"]
)
def test_a_signature_other_than_hs256_under_the_own_secret_is_refused(
    surface: Surface, mutation: Mutation, expect: Expect
) -> None:
    surface.attack(mutation, expect)


@pytest.mark.parametrize(
    ("surface", "mutation", "expect"), on_both(ALGORITHM_CASES), indirect=["surface"]
)
def test_an_algorithm_other_than_hs256_is_refused(
    surface: Surface, mutation: Mutation, expect: Expect
) -> None:
    surface.attack(mutation, expect)


@pytest.mark.parametrize("surface", ["ws", "api"], indirect=True)
def test_a_previous_secret_still_verifies_during_a_rotation(surface: Surface) -> None:
    with override_settings(**{PREVIOUS_SECRETS[surface.name]: [RETIRED_SECRET]}):
        surface.check(surface.forge(key(RETIRED_SECRET)), ACCEPT)


@pytest.mark.parametrize("surface", ["ws", "api"], indirect=True)
def test_a_previous_secret_of_the_other_kind_verifies_nothing(
    surface: Surface,
) -> None:
    other = PREVIOUS_SECRETS[OTHER_SURFACE[surface.name]]
    with override_settings(**{other: [RETIRED_SECRET]}):
        surface.check(surface.forge(key(RETIRED_SECRET)), "bad-signature")
