"""Tokens: generation, hashing and parsing of the Authorization header.

Tokens are 256-bit random strings, so a plain SHA-256 is enough to store them safely (a
slow password hash protects guessable secrets, which these are not)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

ADMIN_TEAM = "admin"
TOKEN_PREFIX = "sgt_"  # noqa: S105 - the tokens' visible prefix, not a secret


def new_token() -> str:
    """A fresh random token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(a.encode(), b.encode())


def parse_authorization(header: str | None) -> tuple[str | None, str] | None:
    """``Bearer <token>`` -> (None, token); ``Basic base64(team:token)`` -> (team, token);
    anything else (or nothing) -> None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if not value:
        return None
    if scheme.lower() == "bearer":
        return None, value
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        team, sep, token = decoded.partition(":")
        if not sep or not token:
            return None
        return team, token
    return None
