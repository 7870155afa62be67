"""Team tokens: stored hashed in the registry database, cached in memory."""

from __future__ import annotations

from sqlalchemy import Engine, insert, select

from registry import _auth, _store
from registry._types import Principal
from sluicegate.errors import Unprocessable


class Tokens:
    """Looks up and creates tokens. The bootstrap admin token lives only in memory."""

    def __init__(self, engine: Engine, admin_token: str | None) -> None:
        self._engine = engine
        self._known: dict[str, Principal] = {}
        if admin_token:
            self._known[_auth.hash_token(admin_token)] = Principal(_auth.ADMIN_TEAM, admin=True)

    def load(self) -> None:
        """Read every stored token."""
        with _store.transaction(self._engine) as conn:
            for row in conn.execute(select(_store.tokens)).all():
                self._known[row.token_hash] = Principal(row.team, bool(row.admin), row.subjects)

    def authenticate(self, authorization_header: str | None) -> Principal | None:
        """The principal of ``Bearer <token>`` or ``Basic <team>:<token>``; None when the
        header is missing or the token unknown (or the team does not match)."""
        parsed = _auth.parse_authorization(authorization_header)
        if parsed is None:
            return None
        team, token = parsed
        digest = _auth.hash_token(token)
        principal = self._known.get(digest)
        if principal is None:  # created by another process since we loaded
            with _store.transaction(self._engine) as conn:
                row = conn.execute(
                    select(_store.tokens).where(_store.tokens.c.token_hash == digest)
                ).first()
            if row is None:
                return None
            principal = Principal(row.team, bool(row.admin), row.subjects)
            self._known[digest] = principal
        if team is not None and not _auth.same(team, principal.team):
            return None
        return principal

    def create(self, team: str, *, subjects: str | None, admin: bool) -> str:
        """Create a token for ``team`` (returned once; only its hash is stored)."""
        if not team or ":" in team or team.strip() != team:
            raise Unprocessable(f"invalid team name {team!r}: no ':' or surrounding spaces")
        token = _auth.new_token()
        digest = _auth.hash_token(token)
        with _store.transaction(self._engine) as conn:
            conn.execute(
                insert(_store.tokens).values(
                    token_hash=digest, team=team, subjects=subjects or None, admin=admin
                )
            )
        self._known[digest] = Principal(team, admin, subjects or None)
        return token
