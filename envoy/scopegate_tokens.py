"""Test/demo key material and JWT minting for scopegate.

Everything here is generated fresh at start-up (an RSA-2048 key pair and a random
HMAC secret): nothing is a real credential. `KeySet.plugin_config()` renders the
plugin configuration of the contract (realm svc-a, issuer https://auth.test,
audience svc-a, the four rules health / orders-read / orders-write / me).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

ISSUER = "https://auth.test"
AUDIENCE = "svc-a"
REALM = "svc-a"
RSA_KID = "rsa-1"
HS_KID = "hs-1"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64url(n: int) -> str:
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def rsa_public_jwk(public_key: rsa.RSAPublicKey, kid: str) -> dict[str, str]:
    nums = public_key.public_numbers()
    return {"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
            "n": _int_b64url(nums.n), "e": _int_b64url(nums.e)}


# --------------------------------------------------------------------------- any algorithm

ASYMMETRIC_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                   "ES256", "ES384", "ES512", "EdDSA")
HMAC_ALGS = ("HS256", "HS384", "HS512")
_EC_CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}


def _fixed_b64url(n: int, size: int) -> str:
    """RFC 7518 6.2.1.2: EC coordinates are always the full length of the curve."""
    return b64url(n.to_bytes(size, "big"))


def generate_private_key(alg: str) -> Any:
    """A fresh private key for a JWS algorithm (RSA-2048 for RS*/PS*)."""
    if alg[:2] in ("RS", "PS"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg in _EC_CURVES:
        return ec.generate_private_key(_EC_CURVES[alg]())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"no asymmetric key type for {alg}")


def public_jwk(private_key: Any, kid: str | None, alg: str | None = None,
               use: str | None = "sig") -> dict[str, str]:
    """The public JWK of an RSA / EC (P-256/384/521) / Ed25519 private key."""
    pub = private_key.public_key()
    jwk: dict[str, str]
    if isinstance(pub, rsa.RSAPublicKey):
        nums = pub.public_numbers()
        jwk = {"kty": "RSA", "n": _int_b64url(nums.n), "e": _int_b64url(nums.e)}
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        crv, size = {"secp256r1": ("P-256", 32), "secp384r1": ("P-384", 48),
                     "secp521r1": ("P-521", 66)}[pub.curve.name]
        nums = pub.public_numbers()
        jwk = {"kty": "EC", "crv": crv, "x": _fixed_b64url(nums.x, size), "y": _fixed_b64url(nums.y, size)}
    elif isinstance(pub, ed25519.Ed25519PublicKey):
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    else:
        raise TypeError(f"unsupported key {type(pub)}")
    if kid is not None:
        jwk["kid"] = kid
    if alg is not None:
        jwk["alg"] = alg
    if use is not None:
        jwk["use"] = use
    return jwk


def public_pem(private_key: Any) -> str:
    """SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`)."""
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def sign_jwt(claims: dict[str, Any], private_key: Any, alg: str, kid: str | None,
             **headers: Any) -> str:
    """A JWT signed with PyJWT (`headers` are extra JOSE header fields)."""
    h = {k: v for k, v in headers.items() if v is not None}
    if kid is not None:
        h["kid"] = kid
    return jwt.encode(claims, private_key, algorithm=alg, headers=h or None)


def hand_made_jwt(header: dict[str, Any], claims: dict[str, Any], signature: bytes) -> str:
    """header.payload.signature with whatever signature the caller computed (forgeries)."""
    return ".".join([b64url(json.dumps(header, separators=(",", ":")).encode()),
                     b64url(json.dumps(claims, separators=(",", ":")).encode()),
                     b64url(signature)])


def signing_input(header: dict[str, Any], claims: dict[str, Any]) -> bytes:
    return ".".join([b64url(json.dumps(header, separators=(",", ":")).encode()),
                     b64url(json.dumps(claims, separators=(",", ":")).encode())]).encode("ascii")


def default_rules() -> list[dict[str, Any]]:
    return [
        {"name": "health", "match": {"exact": "/healthz"}, "require": "public"},
        {"name": "orders-read", "match": {"prefix": "/orders", "methods": ["GET"]},
         "require": {"all_of": ["svc-a:orders:read"]}},
        {"name": "orders-write", "match": {"prefix": "/orders", "methods": ["POST"]},
         "require": {"any_of": ["svc-a:orders:write", "svc-a:admin"]}},
        {"name": "me", "match": {"prefix": "/me"}, "require": "authenticated"},
    ]


class KeySet:
    """An RSA-2048 signing key (kid rsa-1) and an HMAC secret (kid hs-1), plus a
    second RSA key that is NOT in the JWKS (for bad-signature tokens)."""

    def __init__(self) -> None:
        self.rsa_private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rogue_rsa_private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.hmac_secret = os.urandom(32)

    # -- JWKS and plugin config -------------------------------------------------
    def jwks(self) -> dict[str, Any]:
        return {"keys": [
            rsa_public_jwk(self.rsa_private.public_key(), RSA_KID),
            {"kty": "oct", "kid": HS_KID, "alg": "HS256", "k": b64url(self.hmac_secret)},
        ]}

    def provider(self, **overrides: Any) -> dict[str, Any]:
        p: dict[str, Any] = {
            "name": "main",
            "issuer": ISSUER,
            "audiences": [AUDIENCE],
            "algorithms": ["RS256", "HS256"],
            "clock_skew_seconds": 60,
            "jwks": self.jwks(),
            "claims_to_headers": {"sub": "x-scopegate-sub"},
            "forward_token": False,
        }
        p.update(overrides)
        return p

    def plugin_config(self, rules: list[dict[str, Any]] | None = None,
                      **provider_overrides: Any) -> dict[str, Any]:
        return {
            "realm": REALM,
            "providers": [self.provider(**provider_overrides)],
            "rules": copy.deepcopy(rules) if rules is not None else default_rules(),
        }

    # -- tokens -----------------------------------------------------------------
    def claims(self, sub: str = "alice", scope: str | None = "svc-a:orders:read",
               ttl: int = 300, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        c: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub,
                             "iat": now, "exp": now + ttl}
        if scope is not None:
            c["scope"] = scope
        c.update(extra)
        return {k: v for k, v in c.items() if v is not None}

    def rs256(self, claims: dict[str, Any], kid: str = RSA_KID, rogue: bool = False) -> str:
        key = self.rogue_rsa_private if rogue else self.rsa_private
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})

    def hs256(self, claims: dict[str, Any], kid: str = HS_KID,
              secret: bytes | None = None) -> str:
        return jwt.encode(claims, secret if secret is not None else self.hmac_secret,
                          algorithm="HS256", headers={"kid": kid})

    def token(self, alg: str = "RS256", **claim_args: Any) -> str:
        c = self.claims(**claim_args)
        return self.hs256(c) if alg == "HS256" else self.rs256(c)


def unsigned_token(claims: dict[str, Any], kid: str | None = RSA_KID) -> str:
    """An `alg: none` token (empty signature segment)."""
    header: dict[str, Any] = {"alg": "none", "typ": "JWT"}
    if kid:
        header["kid"] = kid
    return ".".join([b64url(json.dumps(header).encode()),
                     b64url(json.dumps(claims).encode()), ""])
