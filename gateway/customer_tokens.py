"""Customer tokens: which customer a customer-facing key's request is for.

A customer-facing chat (an API key with `audience: client`) serves people
who signed in to its front end, and the front end, never the conversation,
says who they are. For each signed-in customer it signs a short-lived JWT
with a private key only it holds; the key record holds the matching public
key (`token_key`), and each request of that key carries the token:

    X-Customer-Token: <JWT>

    header  {"alg": "ES256" (or "EdDSA"), "typ": "JWT"}
    claims  sub   the customer's e-mail address or client id
            aud   the API key's id (a token is good for one key)
            iat   when it was signed
            exp   when it expires, at most MAX_LIFETIME_S after iat

The request's principal is then bound to that customer: every answer is
about them, and a conversation that names anyone else is refused. A
customer-facing key without a valid token is refused (401), so is a token
sent with any other key (400).

    python -m gateway.customer_tokens keypair --out DIR    a front end's key pair
    python -m gateway.customer_tokens mint --private-key DIR/customer-token.key \\
        --key-id web-chat --customer edwina.hawthorne@example.com        a token, as a front end signs it
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from gateway.exchange import Exchange
from gateway.openai_errors import OpenAIError
from services.runtime.customer_identifiers import identifiers_in
from services.runtime.principal import HEADER_VALUE

HEADER = b"x-customer-token"
MAX_LIFETIME_S = 3600
LEEWAY_S = 30  # clocks of the front end and the gateway may differ this much
MAX_TOKEN_BYTES = 4096
ALGORITHMS = {ec.EllipticCurvePublicKey: "ES256", ed25519.Ed25519PublicKey: "EdDSA"}


class TokenKeyError(ValueError):
    """A `token_key` that is not an ES256 (P-256) or Ed25519 public key."""


def load_public_key(pem: str) -> Any:
    """The verifying key of a key record's `token_key`."""
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as error:
        raise TokenKeyError(f"expected a PEM public key: {error}") from None
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name != "secp256r1":
        raise TokenKeyError("an elliptic-curve key must be on P-256 (ES256)")
    if not isinstance(key, tuple(ALGORITHMS)):
        raise TokenKeyError("expected an ES256 (P-256) or Ed25519 public key")
    return key


def _algorithm(key: Any) -> str:
    return next(name for kind, name in ALGORITHMS.items() if isinstance(key, kind))


def _refused(reason: str) -> OpenAIError:
    return OpenAIError(
        401, f"Invalid customer token: {reason}.", type="invalid_request_error", code="invalid_customer_token"
    )


def bound_customer(exchange: Exchange, key_id: str, token_key: Any) -> str:
    """The customer a request of a customer-facing key is for, from its
    verified token; 401 naming what is wrong otherwise. `token_key` None:
    an agent's key, which must not send one."""
    token = exchange.header(HEADER).strip()
    if token_key is None:
        if token:
            raise OpenAIError(
                400, "X-Customer-Token is only for customer-facing keys; this key serves agents.",
                param="x-customer-token", code="unexpected_customer_token",
            )  # fmt: skip
        return ""
    if not token:
        raise OpenAIError(
            401, "This key serves a customer-facing chat: send the signed-in customer's token in X-Customer-Token.",
            type="invalid_request_error", code="missing_customer_token",
        )  # fmt: skip
    if len(token) > MAX_TOKEN_BYTES:
        raise _refused(f"longer than {MAX_TOKEN_BYTES} bytes")
    return _customer(_claims(token, key_id, token_key))


def _claims(token: str | bytes, key_id: str, token_key: Any) -> dict[str, Any]:
    """The token's claims once its signature, audience and times hold."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            token_key,
            algorithms=[_algorithm(token_key)],
            audience=key_id,
            leeway=LEEWAY_S,
            options={"require": ["sub", "aud", "iat", "exp"]},
        )
    except jwt.ExpiredSignatureError:
        raise _refused("it has expired") from None
    except jwt.InvalidAudienceError:
        raise _refused("it was signed for another key (aud)") from None
    except jwt.MissingRequiredClaimError as error:
        raise _refused(f"the claim {error.claim!r} is required") from None
    except jwt.InvalidTokenError:
        raise _refused("its signature does not verify with this key's token_key, or it is malformed") from None
    if not isinstance(claims["exp"], int | float) or not isinstance(claims["iat"], int | float):
        raise _refused("iat and exp must be numbers")
    if claims["exp"] - claims["iat"] > MAX_LIFETIME_S:
        raise _refused(f"it lives longer than {MAX_LIFETIME_S} s (exp - iat)")
    if claims["iat"] > time.time() + LEEWAY_S:
        raise _refused("it was issued in the future (iat)")
    return claims


def _customer(claims: dict[str, Any]) -> str:
    """`sub`: one customer's e-mail address or client id, lower-cased."""
    subject = claims["sub"]
    found = identifiers_in(subject) if isinstance(subject, str) and len(subject) <= 254 else None
    if (
        found is None
        or subject.lower() not in (found.email, found.client_id)
        or found.contact_id
        or not HEADER_VALUE.fullmatch(subject)  # it travels in the principal's header
    ):
        raise _refused("sub must be one customer's e-mail address or client id")
    return str(subject).lower()


# -- what a front end does --------------------------------------------------
def mint(private_key: Any, key_id: str, customer: str, lifetime_s: int = 900, now: float | None = None) -> str:
    """A token for one signed-in customer, as the front end signs it."""
    issued = int(time.time() if now is None else now)
    claims = {"sub": customer, "aud": key_id, "iat": issued, "exp": issued + lifetime_s}
    algorithm = "EdDSA" if isinstance(private_key, ed25519.Ed25519PrivateKey) else "ES256"
    return jwt.encode(claims, private_key, algorithm=algorithm)


def keypair(directory: Path) -> tuple[Path, Path]:
    """A P-256 key pair for a front end: the private key (mode 0600) stays
    with it, the public key goes into the API key's record."""
    directory.mkdir(parents=True, exist_ok=True)
    private = ec.generate_private_key(ec.SECP256R1())
    private_path, public_path = directory / "customer-token.key", directory / "customer-token.pub"
    private_path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    os.chmod(private_path, 0o600)
    public_path.write_bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private_path, public_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", required=True)
    pair = actions.add_parser("keypair", help="write customer-token.key (0600) and customer-token.pub")
    pair.add_argument("--out", required=True, type=Path)
    minted = actions.add_parser("mint", help="print a token for one customer")
    minted.add_argument("--private-key", required=True, type=Path)
    minted.add_argument("--key-id", required=True, help="the customer-facing API key's id (aud)")
    minted.add_argument("--customer", required=True, help="the customer's e-mail address or client id (sub)")
    minted.add_argument("--lifetime", type=int, default=900, help=f"seconds, at most {MAX_LIFETIME_S}")
    args = parser.parse_args(argv)
    if args.action == "keypair":
        private_path, public_path = keypair(args.out)
        print(f"{private_path}\n{public_path}")
        return 0
    if not 0 < args.lifetime <= MAX_LIFETIME_S:
        print(f"--lifetime: 1..{MAX_LIFETIME_S} seconds", file=sys.stderr)
        return 2
    try:
        private_key = serialization.load_pem_private_key(args.private_key.read_bytes(), password=None)
    except (OSError, ValueError) as error:
        print(f"{args.private_key}: {error}", file=sys.stderr)
        return 2
    print(mint(private_key, args.key_id, args.customer, args.lifetime))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
