"""A worker started while its database does not answer waits for it instead of exiting
(under a supervisor, exiting is a crash loop for as long as the outage lasts); a schema
that is behind is still refused at once. The chaos test (tests/chaos) starts a real
`lienthong worker` during a PostgreSQL outage."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import OperationalError

from services import store as worker_store
from services.store import StoreNotReadyError, wait_for_store
from store.migrate import head
from tests.workers.conftest import free_port


async def test_waits_while_nothing_answers_and_stops_when_asked():
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres"  # nothing listens there
    stop = asyncio.Event()
    waiting = asyncio.create_task(wait_for_store(url, stop))
    await asyncio.sleep(2.5)  # a few refused attempts
    assert not waiting.done()
    stop.set()
    assert await asyncio.wait_for(waiting, 10) is None


async def test_returns_the_store_once_the_database_answers(monkeypatch):
    attempts = []
    opened = object()

    def flaky_open_store(url):
        attempts.append(url)
        if len(attempts) < 3:
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        return opened

    monkeypatch.setattr(worker_store, "open_store", flaky_open_store)
    monkeypatch.setattr(worker_store, "STORE_RETRY_MAX", 0.05)
    assert await asyncio.wait_for(wait_for_store("postgresql://db/x", asyncio.Event()), 30) is opened
    assert len(attempts) == 3


async def test_a_schema_that_is_behind_is_still_refused_at_once():
    with pytest.raises(StoreNotReadyError, match=f"not {head()}"):
        await asyncio.wait_for(wait_for_store("sqlite://", asyncio.Event()), 30)
