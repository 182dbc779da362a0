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
from cryptography.hazmat.primitives.asymmetric import rsa

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
