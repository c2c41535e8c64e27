"""Opening the store: refusing a schema that is behind, waiting for a database that
does not answer yet."""

from __future__ import annotations

import asyncio

import structlog
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from store.db import database_url as resolve_database_url
from store.db import make_engine, make_session_factory
from store.migrate import current, head

log = structlog.get_logger("lienthong.store")

STORE_RETRY_MAX = 30.0  # seconds between two checks of a database that does not answer


class StoreNotReadyError(RuntimeError):
    pass


def open_store(url: str | None = None) -> sessionmaker[Session]:
    """Sessions on the projection database, refusing one whose schema is behind:
    writes would fail on every activity, retried forever."""
    resolved = resolve_database_url(url)
    at, wanted = current(resolved), head()
    if at != wanted:
        raise StoreNotReadyError(f"database {make_url(resolved).render_as_string(hide_password=True)} is at "
                                 f"revision {at or 'none'}, not {wanted}: run `lienthong db upgrade`")
    return make_session_factory(make_engine(resolved))


async def wait_for_store(url: str | None, stop: asyncio.Event) -> sessionmaker[Session] | None:
    """`open_store`, waiting for a database that does not answer (down, restarting,
    refusing connections) instead of failing: a worker started during a database outage
    would otherwise exit and crash-loop under its supervisor. A schema that is behind is
    still refused at once. None when `stop` is set while waiting."""
    delay = 1.0
    while True:
        try:
            return await asyncio.to_thread(open_store, url)
        except OperationalError as err:
            log.warning("database_unavailable", error=" ".join(str(err.orig or err).split())[:300],
                        retry_in_s=delay)
        try:
            await asyncio.wait_for(stop.wait(), delay)
            return None
        except TimeoutError:
            delay = min(delay * 2, STORE_RETRY_MAX)
