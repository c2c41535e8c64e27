"""Tokens and idempotency records in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select

from gateway import idempotency
from gateway.idempotency import Answer, Claim
from services import tokens
from store.db import make_engine, make_session_factory
from store.migrate import current, downgrade, head, upgrade
from store.models import AgencyRow, GatewayTokenRow

NOW = datetime(2026, 5, 27, 9, 0, tzinfo=UTC)


@pytest.fixture
def sessions(migrated: str):
    engine = make_engine(migrated)
    factory = make_session_factory(engine)
    with factory.begin() as session:
        session.add_all([AgencyRow(code=code, name=f"Cơ quan {code}", level="tinh", webhook_url=None,
                                   receives_dossiers=desk, updated_at=NOW)
                         for code, desk in (("bpmc-tinh", True), ("vpdk-tinh", False))])
    yield factory
    engine.dispose()


def test_a_token_is_stored_hashed_and_names_its_agency(sessions) -> None:
    with sessions.begin() as session:
        issued = tokens.issue(session, "bpmc-tinh", "operator", NOW)
    prefix, token_id, secret = issued.token.split("_", 2)
    assert (prefix, token_id) == ("lt", issued.id) and len(secret) == 43
    with sessions() as session:
        row = session.get(GatewayTokenRow, issued.id)
        assert row is not None and row.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
        assert secret not in repr([getattr(row, c.key) for c in inspect(GatewayTokenRow).columns])
        caller = tokens.authenticate(session, issued.token)
        assert caller == tokens.Caller("bpmc-tinh", "Cơ quan bpmc-tinh", True, issued.id)
        for wrong in ("", issued.token + "x", issued.token[:-1] + ("A" if issued.token[-1] != "A" else "B"),
                      f"lt_{'0' * 12}_{secret}", issued.token.replace("lt_", "xx_")):
            assert tokens.authenticate(session, wrong) is None, wrong


def test_a_revoked_token_is_refused_and_others_keep_working(sessions) -> None:
    with sessions.begin() as session:
        first = tokens.issue(session, "vpdk-tinh", "operator", NOW)
        second = tokens.issue(session, "vpdk-tinh", "operator", NOW)
    with sessions.begin() as session:
        assert tokens.revoke(session, tokens.token_id_of(first.token), NOW).revoked_at == NOW
    with sessions.begin() as session:  # revoking again keeps the first time
        assert tokens.revoke(session, first.id, NOW + timedelta(hours=1)).revoked_at == NOW
    with sessions() as session:
        assert tokens.authenticate(session, first.token) is None
        assert tokens.authenticate(session, second.token) is not None
        assert {r.id for r in tokens.list_tokens(session, "vpdk-tinh")} == {first.id, second.id}
        assert tokens.list_tokens(session, "bpmc-tinh") == []
    with pytest.raises(tokens.TokenError, match="unknown agency"), sessions.begin() as session:
        tokens.issue(session, "khong-co", "operator", NOW)
    with pytest.raises(tokens.TokenError, match="neither a token id"):
        tokens.token_id_of("abc")
    with pytest.raises(tokens.TokenError, match="unknown token id"), sessions.begin() as session:
        tokens.revoke(session, "0" * 12, NOW)


def claim(sessions, key: str, print_: str, now: datetime) -> Claim:
    with sessions.begin() as session:
        return idempotency.claim(session, "bpmc-tinh", key, print_, "POST", "/v1/x", now)[0]


def test_claims_replays_mismatches_and_stale_takeover(sessions) -> None:
    assert claim(sessions, "k", "A", NOW) == Claim.NEW
    assert claim(sessions, "k", "A", NOW) == Claim.IN_PROGRESS  # the first is still running
    assert claim(sessions, "k", "B", NOW) == Claim.MISMATCH
    with sessions.begin() as session:
        idempotency.finish(session, "bpmc-tinh", "k", Answer(201, {"ok": 1}, {"Location": "/v1/x/1"}), NOW)
    with sessions.begin() as session:
        outcome, row = idempotency.claim(session, "bpmc-tinh", "k", "A", "POST", "/v1/x", NOW)
        assert outcome == Claim.REPLAY and row is not None
        assert idempotency.stored_answer(row) == Answer(201, {"ok": 1}, {"Location": "/v1/x/1"})
    # A holder that died: its claim is taken over once the lease has passed, by one taker.
    assert claim(sessions, "dead", "A", NOW) == Claim.NEW
    assert claim(sessions, "dead", "A", NOW + idempotency.LEASE) == Claim.IN_PROGRESS
    later = NOW + idempotency.LEASE + timedelta(seconds=1)
    assert claim(sessions, "dead", "A", later) == Claim.NEW
    assert claim(sessions, "dead", "A", later) == Claim.IN_PROGRESS
    # A transient failure releases the claim: the retry runs again.
    assert claim(sessions, "flaky", "A", NOW) == Claim.NEW
    with sessions.begin() as session:
        idempotency.release(session, "bpmc-tinh", "flaky")
    assert claim(sessions, "flaky", "A", NOW) == Claim.NEW


def test_fingerprints_ignore_spacing_and_order_not_content() -> None:
    same = idempotency.fingerprint("POST", "/v1/a", {"b": 1, "a": [1, 2]})
    assert same == idempotency.fingerprint("POST", "/v1/a", {"a": [1, 2], "b": 1})
    assert same != idempotency.fingerprint("POST", "/v1/a", {"a": [2, 1], "b": 1})
    assert same != idempotency.fingerprint("POST", "/v1/b", {"a": [1, 2], "b": 1})


def test_migration_0002_up_and_down(db_url: str) -> None:
    assert upgrade(db_url) == head()
    engine = make_engine(db_url)
    try:
        assert {"gateway_tokens", "gateway_requests"} <= set(inspect(engine).get_table_names())
        assert downgrade(db_url, "0001") == "0001"
        assert not {"gateway_tokens", "gateway_requests"} & set(inspect(engine).get_table_names())
        assert upgrade(db_url) == head() == current(db_url)
        with make_session_factory(engine)() as session:
            assert session.scalars(select(GatewayTokenRow)).all() == []
    finally:
        engine.dispose()
