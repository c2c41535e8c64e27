"""Agencies' bearer tokens: issued once, stored hashed, looked up by their public id.

A token reads `lt_<id>_<secret>`: `id` (12 hex digits) finds the row, `secret` (32
random bytes, URL-safe base64) is checked against its stored sha256 in constant time.
A 256-bit random secret needs no slow password hash: it cannot be guessed, only leaked.
No FastAPI here: the CLI issues and revokes tokens with these functions.

A token has a role (migration 0010): `agency` acts for its agency on the gateway's /v1
routes; `monitoring` reads the province's reports (/v1/reports) for the monitoring team
of the unit it is issued to, and acts for nobody (its agency code says whose team holds
it: accountability, not access).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import TOKEN_ROLES, AgencyRow, GatewayTokenRow

PREFIX = "lt"
_TOKEN = re.compile(r"^lt_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_ID = re.compile(r"^[0-9a-f]{12}$")
AGENCY, MONITORING = TOKEN_ROLES
ROLES: tuple[str, ...] = TOKEN_ROLES


class TokenError(ValueError):
    """An unknown agency or token id; the message says which."""


@dataclass(frozen=True)
class Issued:
    id: str
    agency: str
    token: str  # shown once; only its hash is stored
    role: str = AGENCY


@dataclass(frozen=True)
class Caller:
    """The agency a request is made as."""

    agency: str
    name: str
    receives_dossiers: bool
    token_id: str
    role: str = AGENCY  # ROLES


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def issue(session: Session, agency: str, created_by: str, now: datetime, role: str = AGENCY) -> Issued:
    if role not in ROLES:
        raise TokenError(f"unknown token role {role!r}: expected one of {', '.join(ROLES)}")
    row = session.get(AgencyRow, agency)
    if row is None:
        raise TokenError(f"unknown agency {agency}")
    if row.retired_at is not None:
        raise TokenError(f"agency {agency} was retired at {row.retired_at.isoformat(timespec='seconds')}; "
                         "it gets no tokens")
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    session.add(GatewayTokenRow(id=token_id, agency=agency, secret_sha256=_digest(secret), role=role,
                                created_at=now, created_by=created_by, revoked_at=None))
    session.flush()
    return Issued(id=token_id, agency=agency, token=f"{PREFIX}_{token_id}_{secret}", role=role)


def token_id_of(text: str) -> str:
    """A token id, from the id itself or a whole token (operators paste either)."""
    text = text.strip()
    if found := _TOKEN.match(text):
        return found.group(1)
    if _ID.match(text):
        return text
    raise TokenError(f"{text[:20]!r} is neither a token id (12 hex digits) nor a token")


def revoke(session: Session, token_id: str, now: datetime) -> GatewayTokenRow:
    """Revoke a token (idempotent: an already revoked one keeps its first revocation time)."""
    row = session.get(GatewayTokenRow, token_id)
    if row is None:
        raise TokenError(f"unknown token id {token_id}")
    if row.revoked_at is None:
        row.revoked_at = now
    return row


def list_tokens(session: Session, agency: str | None = None) -> Sequence[GatewayTokenRow]:
    query = select(GatewayTokenRow).order_by(GatewayTokenRow.agency, GatewayTokenRow.created_at)
    if agency is not None:
        query = query.where(GatewayTokenRow.agency == agency)
    return session.scalars(query).all()


def refusal(session: Session, token: str) -> str:
    """Why `authenticate` refused `token`, without telling a stranger anything: a token
    is called revoked only when its secret matches (its holder may know that)."""
    found = _TOKEN.match(token)
    if found is None:
        return ("the token is malformed: expected lt_<12 hex digits>_<43 characters>, as printed by "
                "`lienthong agencies issue-token`")
    token_id, secret = found.groups()
    stored = session.get(GatewayTokenRow, token_id)
    if stored is not None and hmac.compare_digest(stored.secret_sha256, _digest(secret)):
        agency = session.get(AgencyRow, stored.agency)
        if agency is not None and agency.retired_at is not None:
            return f"agency {agency.code} was retired at {agency.retired_at.isoformat(timespec='seconds')}"
    if stored is not None and stored.revoked_at is not None and hmac.compare_digest(stored.secret_sha256,
                                                                                    _digest(secret)):
        return (f"token {token_id} was revoked at {stored.revoked_at.isoformat(timespec='seconds')}; "
                "ask an operator for a new one")
    return "the token is unknown (or revoked): ask an operator for a new one"


def authenticate(session: Session, token: str) -> Caller | None:
    """The agency holding `token`, or None for a malformed, unknown or revoked one."""
    found = _TOKEN.match(token)
    if found is None:
        return None
    token_id, secret = found.groups()
    query = (select(GatewayTokenRow, AgencyRow)
             .join(AgencyRow, AgencyRow.code == GatewayTokenRow.agency)
             .where(GatewayTokenRow.id == token_id))
    row = session.execute(query).first()
    if row is None:
        return None
    stored, agency = row
    if stored.revoked_at is not None or not hmac.compare_digest(stored.secret_sha256, _digest(secret)):
        return None
    if agency.retired_at is not None:  # retiring revokes its tokens; this holds even if one was missed
        return None
    return Caller(agency=agency.code, name=agency.name, receives_dossiers=agency.receives_dossiers,
                  token_id=token_id, role=stored.role)
