"""`Idempotency-Key` on every POST (draft-ietf-httpapi-idempotency-key-header).

The first request with a key claims it in `gateway_requests` (agency, key) together
with a fingerprint of what it asked; its answer is stored when it has one. Then:

* same key, same fingerprint, answered  → the stored answer again, nothing changes;
* same key, other fingerprint           → 422 idempotency-key-reused;
* same key while the first is running   → 409 idempotency-key-in-use (Retry-After);
* a claim left by a crashed request     → taken over after LEASE.

Transient failures (5xx) are not stored: the claim is released so a retry runs again.
That is safe because the key is also the Temporal Update id (`agency:key`), so the
workflow applies a change at most once whichever path the retry takes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.orm import Session
from starlette.responses import JSONResponse, Response

from gateway.context import GatewayContext
from gateway.problems import GatewayProblem
from store.models import GatewayRequestRow
from store.upsert import dialect_insert, touched

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
# Longer than the slowest first answer (an Update waits 30 s, a submission 10 s more).
LEASE = timedelta(seconds=90)
RETRY_AFTER = "2"
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"  # visible ASCII, as HTTP header values allow


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"

    def response(self, replayed: bool = False) -> Response:
        headers = dict(self.headers)
        if replayed:
            headers[REPLAYED] = "true"
        return JSONResponse(self.body, status_code=self.status, headers=headers, media_type=self.media_type)


class Claim(StrEnum):
    NEW = "new"
    REPLAY = "replay"
    MISMATCH = "mismatch"
    IN_PROGRESS = "in_progress"


def fingerprint(method: str, path: str, body: Any) -> str:
    """What the request asked, independent of JSON spacing and key order."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method}\n{path}\n{canonical}".encode()).hexdigest()


def _key(agency: str, key: str) -> tuple[Any, ...]:
    return (GatewayRequestRow.agency == agency, GatewayRequestRow.key == key)


def claim(session: Session, agency: str, key: str, print_: str, method: str, path: str,
          now: datetime) -> tuple[Claim, GatewayRequestRow | None]:
    # Look first: a replay then only reads (on SQLite an INSERT attempt would queue for
    # the write lock behind the worker's writes, even when it inserts nothing).
    row = session.get(GatewayRequestRow, (agency, key))
    if row is None:
        inserted = dialect_insert(session, GatewayRequestRow).values(
            agency=agency, key=key, fingerprint=print_, method=method, path=path, claimed_at=now,
        ).on_conflict_do_nothing(index_elements=["agency", "key"])
        if touched(session, inserted) == 1:
            return Claim.NEW, None
        row = session.get(GatewayRequestRow, (agency, key), populate_existing=True)
        if row is None:  # its holder released it between our two statements
            return Claim.IN_PROGRESS, None
    if row.fingerprint != print_:
        return Claim.MISMATCH, row
    if row.status_code is not None:
        return Claim.REPLAY, row
    # Take over a claim whose holder died; the compare on claimed_at makes one taker win.
    stale = update(GatewayRequestRow).where(
        *_key(agency, key), GatewayRequestRow.status_code.is_(None),
        GatewayRequestRow.claimed_at == row.claimed_at, GatewayRequestRow.claimed_at < now - LEASE,
    ).values(claimed_at=now)
    if touched(session, stale) == 1:
        return Claim.NEW, None
    return Claim.IN_PROGRESS, row


def finish(session: Session, agency: str, key: str, answer: Answer, now: datetime) -> None:
    session.execute(update(GatewayRequestRow).where(*_key(agency, key), GatewayRequestRow.status_code.is_(None))
                    .values(status_code=answer.status, completed_at=now,
                            response={"body": answer.body, "headers": answer.headers,
                                      "media_type": answer.media_type}))


def release(session: Session, agency: str, key: str) -> None:
    session.execute(delete(GatewayRequestRow).where(*_key(agency, key), GatewayRequestRow.status_code.is_(None)))


def stored_answer(row: GatewayRequestRow) -> Answer:
    assert row.status_code is not None and row.response is not None
    return Answer(status=row.status_code, body=row.response["body"], headers=dict(row.response.get("headers") or {}),
                  media_type=row.response.get("media_type") or "application/json")


async def run_once(context: GatewayContext, agency: str, key: str, method: str, path: str, body: Any,
                   operation: Callable[[], Awaitable[Answer]]) -> Response:
    """Answer a POST once per (agency, key): run `operation` for a new key, else replay or refuse."""
    print_ = fingerprint(method, path, body)
    now = datetime.now(UTC)
    outcome, row = await context.write(lambda s: claim(s, agency, key, print_, method, path, now))
    if outcome == Claim.MISMATCH:
        assert row is not None
        raise GatewayProblem("idempotency-key-reused", f"Idempotency-Key {key!r} was first used for "
                             f"{row.method} {row.path} with another body at {row.claimed_at.isoformat()}")
    if outcome == Claim.IN_PROGRESS:
        raise GatewayProblem("idempotency-key-in-use", f"a request with Idempotency-Key {key!r} is in progress",
                             headers={"Retry-After": RETRY_AFTER})
    if outcome == Claim.REPLAY:
        assert row is not None
        return stored_answer(row).response(replayed=True)
    try:
        answer = await operation()
    except GatewayProblem as problem:
        if problem.status >= 500:
            await context.write(lambda s: release(s, agency, key))
            raise
        answer = Answer(problem.status, problem.body(path), problem.headers, "application/problem+json")
    except BaseException:
        await context.write(lambda s: release(s, agency, key))
        raise
    await context.write(lambda s: finish(s, agency, key, answer, datetime.now(UTC)))
    return answer.response()


def update_id(agency: str, key: str) -> str:
    """The Temporal Update id for an agency's key: the CLI's --request-id can name it too."""
    return f"{agency}:{key}"
