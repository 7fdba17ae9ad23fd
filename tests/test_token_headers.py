"""Forged and malformed bearer tokens in every key mode: always a 401 in the error shape (a 403
only for a genuine token without the rights), never a 5xx, never accepted, and messages that
quote no library internals.

Key modes: a shared HMAC secret (one algorithm, or two); a public key (RSA, EC or Ed25519),
with one algorithm family or two. The service verifies with one configured key and no key
set, so `kid`, `jku`, `x5u`, `x5c` and `jwk` must change nothing: a token is genuine only if
the configured key made its signature.

`NEWSFEED_FUZZ_EXAMPLES` scales the generated headers per mode (default 25; `make fuzz`: 500).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import TEST_SECRET

EXAMPLES = int(os.environ.get("NEWSFEED_FUZZ_EXAMPLES", "25"))
ALGORITHMS = jwt.algorithms.get_default_algorithms()
USER = "alice"
PROTECTED = "/v1/users/alice/categories"  # the subject's own data
ADMIN = "/v1/experiments"  # needs the admin claim
PUBLIC = "/v1/categories"  # no token needed; a bad one is ignored (it only picks a rate limit)
# Everything a 401 may say: the service's own words (feed/readers/tokens.py, api/auth.py).
MESSAGE = re.compile(
    r"token has expired"
    r"|missing bearer token: send 'Authorization: Bearer <jwt>'"
    r"|invalid token: (?:the '(?:sub|exp)' claim is missing|it is not for this audience"
    r"|it is not from the configured issuer|it is not valid yet"
    r"|its algorithm is not accepted here|the signature does not verify"
    r"|malformed, or not signed with the configured key|'sub' must be a user id \(.*\))"
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _pem(public: Any) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _der(public: Any) -> bytes:
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _self_signed(key: rsa.RSAPrivateKey) -> str:
    """An attacker's certificate, as a base64 DER x5c entry."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "newsfeed issuer")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


# The service's keys, and an attacker's of every type.
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
ATTACKER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ATTACKER_EC = {
    "ES256": ec.generate_private_key(ec.SECP256R1()),
    "ES384": ec.generate_private_key(ec.SECP384R1()),
    "ES512": ec.generate_private_key(ec.SECP521R1()),
}
ATTACKER_ED = ed25519.Ed25519PrivateKey.generate()
ATTACKER_SECRET = b"attacker-secret-that-is-long-enough-too"
ATTACKER_CERT = _self_signed(ATTACKER_RSA)
ATTACKER_JWK = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(ATTACKER_RSA.public_key()))


@dataclass(frozen=True)
class KeyMode:
    name: str
    algorithms: tuple[str, ...]
    private: Any = None  # None: the shared secret
    secret: str = TEST_SECRET

    @property
    def public_pem(self) -> str | None:
        return _pem(self.private.public_key()) if self.private is not None else None

    def settings(self) -> dict[str, Any]:
        if self.private is None:
            return {"jwt_secret": self.secret, "jwt_algorithms": self.algorithms}
        return {
            "jwt_secret": "",
            "jwt_public_key": self.public_pem,
            "jwt_algorithms": self.algorithms,
            "cursor_secret": "c" * 40,
        }

    def genuine(self, header: Any, payload: Any, alg: str | None = None) -> str:
        """Signed with the configured key: what the real issuer would send."""
        alg = alg or self.algorithms[0]
        if self.private is None:
            return _hmac_token(header, payload, self.secret.encode(), alg)
        return _token(header, payload, alg, self.private)


KEY_MODES = [
    KeyMode("hmac", ("HS256",)),
    # RFC 7518 §3.2: an HS512 key is at least 64 bytes (PyJWT warns on every shorter use).
    KeyMode("hmac-two", ("HS256", "HS512"), secret="s" * 64),
    KeyMode("rsa", ("RS256",), RSA_KEY),
    KeyMode("rsa-pss", ("PS256",), RSA_KEY),
    KeyMode("rsa-two-families", ("RS256", "ES256"), RSA_KEY),
    KeyMode("ec", ("ES256",), EC_KEY),
    KeyMode("ec-three-families", ("ES256", "RS256", "EdDSA"), EC_KEY),
    KeyMode("ed25519", ("EdDSA",), ED_KEY),
    KeyMode("ed25519-two-families", ("EdDSA", "PS256"), ED_KEY),
]


def _segment(part: Any) -> str:
    if isinstance(part, bytes):
        return _b64(part)
    return _b64(json.dumps(part).encode())


def _token(header: Any, payload: Any, alg: str, key: Any) -> str:
    """A JWS signed with ``key`` by ``alg`` whatever the header says."""
    signing_input = f"{_segment(header)}.{_segment(payload)}"
    algorithm = ALGORITHMS[alg]
    signature = algorithm.sign(signing_input.encode(), algorithm.prepare_key(key))
    return f"{signing_input}.{_b64(signature)}"


def _hmac_token(header: Any, payload: Any, secret: bytes, alg: str = "HS256") -> str:
    """HMAC by hand: PyJWT refuses a PEM as an HMAC secret, an attacker does not."""
    signing_input = f"{_segment(header)}.{_segment(payload)}"
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signature = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{_b64(signature)}"


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sub": USER, "exp": int(time.time()) + 600, "admin": True}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def _attacker_sign(alg: str, header: Any, payload: Any) -> str:
    """A token signed by ``alg`` with a key the attacker holds."""
    if alg.startswith("HS"):
        return _hmac_token(header, payload, ATTACKER_SECRET, alg)
    if alg in ATTACKER_EC:
        return _token(header, payload, alg, ATTACKER_EC[alg])
    if alg == "EdDSA":
        return _token(header, payload, alg, ATTACKER_ED)
    return _token(header, payload, alg, ATTACKER_RSA)


SIGNING_ALGS = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512", "EdDSA",
]  # fmt: skip
KID = {
    "kid missing": ...,
    "kid unknown": "no-such-key",
    "kid path traversal": "../../../../etc/passwd",
    "kid null byte": "key\x00.pem",
    "kid sql": "' OR '1'='1",
    "kid huge": "k" * 20_000,
    "kid number": 7,
    "kid null": None,
    "kid object": {"kid": "x"},
    "kid list": ["a", "b"],
}
REMOTE_KEYS = {
    "jku": {"jku": "https://attacker.example/jwks.json"},
    "jku internal": {"jku": "http://169.254.169.254/latest/meta-data/"},
    "x5u": {"x5u": "https://attacker.example/cert.pem"},
    "x5c": {"x5c": [ATTACKER_CERT]},
    "x5c garbage": {"x5c": ["not base64 !!"]},
    "jwk embedded": {"jwk": ATTACKER_JWK},
    "jwk garbage": {"jwk": {"kty": "RSA", "n": "@@", "e": 3}},
    "x5t": {"x5t": "AAAA", "x5t#S256": 12},
}
CRIT = {
    "crit unknown": {"crit": ["urn:x:unknown"], "urn:x:unknown": True},
    "crit exp": {"crit": ["exp"]},
    "crit empty": {"crit": []},
    "crit not a list": {"crit": "b64"},
    "crit number": {"crit": [1]},
    "crit b64 only": {"crit": ["b64"]},
    "b64 false": {"b64": False, "crit": ["b64"]},
    "b64 false not critical": {"b64": False},
    "b64 string": {"b64": "false", "crit": ["b64"]},
}
TYP = {
    "typ JWE": {"typ": "JWE"},
    "typ number": {"typ": 123},
    "typ null": {"typ": None},
    "typ huge": {"typ": "t" * 10_000},
    "typ at+jwt": {"typ": "at+jwt"},
    "cty JWT": {"cty": "JWT"},
    "zip": {"zip": "DEF"},
    "enc": {"enc": "A256GCM"},
}


def forged(mode: KeyMode) -> Iterator[tuple[str, str]]:
    """Tokens the configured key did not sign (or not for this header): each must be a 401."""
    good = claims()
    first = mode.algorithms[0]
    # Every algorithm, signed with the attacker's key of its type.
    for alg in SIGNING_ALGS:
        yield f"{alg} by the attacker", _attacker_sign(alg, {"alg": alg, "typ": "JWT"}, good)
    # alg none in its spellings, with and without a signature.
    for none in ("none", "None", "NONE", "nOnE"):
        unsigned = f"{_segment({'alg': none, 'typ': 'JWT'})}.{_segment(good)}"
        yield f"alg {none}", unsigned + "."
        yield f"alg {none} with a signature", unsigned + "." + _b64(b"sig")
    # Odd alg values, with a genuine signature under the configured algorithm.
    for name, alg in {
        "alg unknown": "XYZ",
        "alg empty": "",
        "alg lower case": first.lower(),
        "alg null": None,
        "alg number": 256,
        "alg list": [first],
        "alg object": {"alg": first},
        "alg missing": ...,
    }.items():
        header = {"typ": "JWT"} if alg is ... else {"alg": alg, "typ": "JWT"}
        yield name, mode.genuine(header, good, first)
    # A genuine signature under a header whose alg names another algorithm of the same key.
    for other in ("RS256", "PS256", "ES256", "EdDSA", "HS256", "HS512"):
        if other != first:
            yield f"header says {other}, signed {first}", mode.genuine({"alg": other}, good, first)
    # Algorithm confusion: HMAC keyed with the public key, in every form a verifier might use.
    if mode.public_pem is not None:
        public = mode.private.public_key()
        forms = {
            "pem": mode.public_pem.encode(),
            "pem without newline": mode.public_pem.strip().encode(),
            "der": _der(public),
        }
        for form, secret in forms.items():
            for alg in ("HS256", "HS384", "HS512"):
                token = _hmac_token({"alg": alg, "typ": "JWT"}, good, secret, alg)
                yield f"{alg} keyed with the public key ({form})", token
    else:
        yield "HS256 with an empty secret", _hmac_token({"alg": "HS256"}, good, b"")
        yield "HS256 with a wrong secret", _hmac_token({"alg": "HS256"}, good, ATTACKER_SECRET)
    # Header parameters that name other keys: the attacker's key signs, the header points at it.
    attacker_alg = first if not first.startswith("HS") else "RS256"
    for group in (KID, REMOTE_KEYS, CRIT, TYP):
        for name, extra in group.items():
            header: dict[str, Any] = {"alg": attacker_alg, "typ": "JWT"}
            if group is KID:
                if extra is not ...:
                    header["kid"] = extra
            else:
                header.update(extra)
            yield f"{name} by the attacker", _attacker_sign(attacker_alg, header, good)
            if group is not TYP:
                header["alg"] = first
                yield f"{name} by the attacker as {first}", _attacker_sign(first, header, good)
    # A genuine token whose signature was altered, or moved to another token.
    genuine = mode.genuine({"alg": first, "typ": "JWT"}, good)
    head, body, signature = genuine.split(".")
    other_body = _segment(claims(sub="mallory"))
    yield "payload swapped", f"{head}.{other_body}.{signature}"
    yield "signature truncated", f"{head}.{body}.{signature[:-4]}"
    yield "signature empty", f"{head}.{body}."
    yield "signature flipped", f"{head}.{body}.{signature[::-1]}"
    yield "signature padded", f"{head}.{body}.{signature}=="
    yield "signature not base64", f"{head}.{body}.@@@{signature}"
    # Genuine signatures over tokens the service must still refuse.
    must_refuse = {
        "crit unknown, genuinely signed": {"crit": ["urn:x:unknown"], "urn:x:unknown": 1},
        "b64 false, genuinely signed": {"b64": False, "crit": ["b64"]},
        "kid not a string, genuinely signed": {"kid": 7},
        "crit not a list, genuinely signed": {"crit": "exp"},
    }
    for name, extra in must_refuse.items():
        yield name, mode.genuine({"alg": first, **extra}, good)
    yield "expired", mode.genuine({"alg": first}, claims(exp=int(time.time()) - 5))
    yield "no exp", mode.genuine({"alg": first}, claims(exp=...))
    yield "no sub", mode.genuine({"alg": first}, claims(sub=...))
    yield "exp infinite", mode.genuine({"alg": first}, b'{"sub":"alice","exp":1e400}')
    yield "exp NaN", mode.genuine({"alg": first}, b'{"sub":"alice","exp":NaN}')
    yield "exp not a number", mode.genuine({"alg": first}, claims(exp="soon"))
    yield (
        "exp too long to read",
        mode.genuine({"alg": first}, b'{"sub":"alice","exp":' + b"9" * 5000 + b"}"),
    )
    yield "sub a number", mode.genuine({"alg": first}, claims(sub=7))
    yield "sub a list", mode.genuine({"alg": first}, claims(sub=[USER]))
    yield "nbf in the future", mode.genuine({"alg": first}, claims(nbf=int(time.time()) + 999))
    yield "iat not a number", mode.genuine({"alg": first}, claims(iat="yesterday"))
    yield "payload a list", mode.genuine({"alg": first}, [good])
    yield "payload not json", mode.genuine({"alg": first}, b"{sub: alice}")
    yield "payload nested deep", mode.genuine({"alg": first}, b"[" * 50_000 + b"]" * 50_000)
    yield (
        "payload duplicate sub",
        mode.genuine({"alg": first}, b'{"sub":"mallory","sub":"alice","exp":9999999999}'),
    )
    yield from malformed(first)


def malformed(alg: str) -> Iterator[tuple[str, str]]:
    """Tokens that are not a JWS at all."""
    payload = _segment(claims())
    for name, header in {
        "header a list": b'["alg"]',
        "header a string": b'"HS256"',
        "header a number": b"256",
        "header null": b"null",
        "header not json": b"{alg: HS256}",
        "header not utf-8": b'{"alg":"\xff\xfe"}',
        "header a lone surrogate": b'{"alg":"\\ud800"}',
        "header nested deep": b"[" * 50_000 + b"]" * 50_000,
        "header huge": json.dumps({"alg": alg, "pad": "x" * 100_000}).encode(),
        "header duplicate alg": b'{"alg":"none","alg":"' + alg.encode() + b'"}',
        "header empty": b"",
    }.items():
        yield name, f"{_b64(header)}.{payload}.{_b64(b'sig')}"
    for name, token in {
        "empty": "",
        "one dot": ".",
        "two dots": "..",
        "two segments": f"{_segment({'alg': alg})}.{payload}",
        "four segments": f"{_segment({'alg': alg})}.{payload}.c2ln.c2ln",
        "five segments (JWE)": "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d",
        "header not base64": f"@@@.{payload}.c2ln",
        "header padded": f"{_segment({'alg': alg})}==.{payload}.c2ln",
        "header standard base64": base64.b64encode(b'{"alg":"HS256"}>>>').decode()
        + f".{payload}.c2ln",
        "non-ascii": f"ëyJ.{payload}.c2ln",
        "whitespace inside": f"{_segment({'alg': alg})} .{payload}.c2ln",
        "control characters": "\x01\x02.\x03.\x04",
        "huge": "a" * 20_000 + "." + "b" * 20_000 + ".c",
    }.items():
        yield name, token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(params=KEY_MODES, ids=lambda m: m.name)
def mode(request: pytest.FixtureRequest) -> KeyMode:
    found: KeyMode = request.param
    return found


@pytest.fixture
def service(make_app: Callable[..., Flask], mode: KeyMode) -> FlaskClient:
    """The service configured for this key mode."""
    return make_app(**mode.settings()).test_client()


def problems_with_401(response: Any) -> list[str]:
    """What is wrong with an answer that should be a 401 in the error shape."""
    if response.status_code != 401:
        return [f"{response.status_code}: {response.get_data()[:200]!r}"]
    body = response.get_json(silent=True) or {}
    error = body.get("error") or {}
    found = []
    if error.get("status") != 401 or error.get("code") != "unauthorized":
        found.append(f"not the error shape: {body}")
    if not MESSAGE.fullmatch(error.get("message", "")):
        found.append(f"message not ours: {error.get('message')!r}")
    if not response.headers.get("WWW-Authenticate", "").startswith("Bearer"):
        found.append("no WWW-Authenticate: Bearer")
    return found


def test_forged_and_malformed_tokens_are_401_in_every_key_mode(
    service: FlaskClient, mode: KeyMode
) -> None:
    client = service
    genuine = bearer(mode.genuine({"alg": mode.algorithms[0], "typ": "JWT"}, claims()))
    assert client.get(PROTECTED, headers=genuine).status_code == 200  # the mode works
    assert client.get(ADMIN, headers=genuine).status_code == 200
    failures = []
    for name, token in forged(mode):
        for path in (PROTECTED, ADMIN):
            for problem in problems_with_401(client.get(path, headers=bearer(token))):
                failures.append(f"{name} on {path}: {problem}")
        public = client.get(PUBLIC, headers=bearer(token))
        if public.status_code != 200:
            failures.append(f"{name} on {PUBLIC}: {public.status_code}")
    assert not failures, "\n".join(failures)


def test_genuine_tokens_with_odd_headers_or_claims_are_never_a_5xx(
    service: FlaskClient, mode: KeyMode
) -> None:
    """Headers a real issuer may add change nothing; odd claims are a 401 or a 403."""
    client = service
    first = mode.algorithms[0]
    harmless = {"kid unknown": {"kid": "k1"}, **REMOTE_KEYS, **TYP}
    for name, extra in harmless.items():
        token = bearer(mode.genuine({"alg": first, **extra}, claims()))
        response = client.get(PROTECTED, headers=token)
        assert response.status_code == 200, (name, response.get_json())

    odd_claims: dict[str, tuple[Any, str, int]] = {
        "exp beyond any date": (
            b'{"sub":"alice","admin":true,"exp":1' + b"0" * 400 + b"}",
            ADMIN,
            200,
        ),
        "exp as a string": (claims(exp=str(int(time.time()) + 600)), ADMIN, 200),
        "admin as a string": (claims(admin="true"), ADMIN, 403),
        "admin as a number": (claims(admin=1), ADMIN, 403),
        "admin null": (claims(admin=None), ADMIN, 403),
        "aud of another service": (claims(aud="someone-else"), ADMIN, 401),
        "sub of another user": (claims(sub="bob"), PROTECTED, 403),
    }
    for name, (payload, path, status) in odd_claims.items():
        response = client.get(path, headers=bearer(mode.genuine({"alg": first}, payload)))
        assert response.status_code == status, (name, response.get_json())


@st.composite
def forged_headers(draw: st.DrawFn, mode: KeyMode) -> tuple[str, str]:
    """A header of standard and odd parameters, signed by the attacker (never the key)."""
    values = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.text(max_size=20),
        st.sampled_from(SIGNING_ALGS + ["none", "XYZ", ""]),
        st.lists(st.text(max_size=5), max_size=3),
        st.just(ATTACKER_JWK),
        st.just([ATTACKER_CERT]),
    )
    names = st.sampled_from(
        ["alg", "kid", "jku", "x5u", "x5c", "jwk", "crit", "b64", "typ", "cty", "zip", "enc"]
    )
    header = draw(st.dictionaries(names | st.text(max_size=8), values, max_size=6))
    signer = draw(st.sampled_from(SIGNING_ALGS))
    if draw(st.booleans()):
        header["alg"] = draw(st.sampled_from([*SIGNING_ALGS, *mode.algorithms]))
    return json.dumps(header), _attacker_sign(signer, header, claims())


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_generated_headers_signed_by_an_attacker_are_401(
    service: FlaskClient, mode: KeyMode, data: st.DataObject
) -> None:
    client = service
    header, token = data.draw(forged_headers(mode), label="header, token")
    for path in (PROTECTED, ADMIN):
        problems = problems_with_401(client.get(path, headers=bearer(token)))
        assert not problems, (header, path, problems)
