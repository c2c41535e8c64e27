"""What every `lienthong` command shares: the refusal type, the dossier client and the
store with every failure as one line, and how instants are shown."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from services.dossiers import DossierClient, Refusal
from services.store import StoreNotReadyError, open_store
from services.submission import LOCAL_TZ
from services.temporal import connect_or_refuse
from store.db import database_url, make_engine, make_session_factory
from workflows.payloads import DossierState
from workflows.refusals import RefusalKind


class CliError(Exception):
    """A refusal: printed as one line on stderr, exit code 1 (2: a bad argument, like a
    usage error). `details` (e.g. every `PATH:LINE: message` of a broken file) are
    printed on stdout before it."""

    def __init__(self, message: str, details: list[str] | None = None, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.details = list(details or [])
        self.exit_code = exit_code


# ----------------------------------------------------------------------------- text


def when(at: datetime | None) -> str:
    """Instants in Vietnam time: that is the clock the deadlines are read on."""
    return at.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M") if at else "-"


def one_line(err: BaseException | str) -> str:
    text = " ".join(str(err).split())
    return text or (type(err).__name__ if isinstance(err, BaseException) else "")


def print_table(rows: Sequence[Sequence[str]], *, markers: list[str] | None = None) -> None:
    """Columns padded to their widest cell; the last column is not padded.
    `markers` (one per data row) are appended after it, e.g. OVERDUE."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for index, row in enumerate(rows):
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]
        if markers is not None and index > 0 and markers[index - 1]:
            line += "  " + markers[index - 1]
        print(line.rstrip())


# ----------------------------------------------------------------------------- database


def shown_url(settings: Settings) -> str:
    """The database URL without its password, as operators may see it."""
    return make_url(database_url(settings.database_url)).render_as_string(hide_password=True)


@contextmanager
def store_sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Sessions on the projection database; refuses one whose schema is not at head
    (the message says to run `lienthong db upgrade`). The engine is disposed after."""
    try:
        sessions = open_store(settings.database_url)
    except StoreNotReadyError as err:
        raise CliError(str(err)) from err
    try:
        yield sessions
    finally:
        bind: Any = sessions.kw.get("bind")
        if bind is not None:
            bind.dispose()


# ----------------------------------------------------------------------------- Temporal


@asynccontextmanager
async def dossier_client(settings: Settings) -> AsyncIterator[DossierClient]:
    """The dossier client on Temporal and the store. The store is opened without the
    schema check: a change only reads an inbox through it, and says "retry" when it
    cannot (services.temporal.inbox_check)."""
    client = await connect_or_refuse(settings)
    engine = make_engine(settings.database_url)
    try:
        yield DossierClient(client, make_session_factory(engine), settings.task_queue)
    finally:
        engine.dispose()


def refused(refusal: Refusal, *, request_id: str | None = None) -> CliError:
    """A dossier client's refusal as one line for operators."""
    if refusal.kind is RefusalKind.NO_WORKER:
        retry = f"; retry with --request-id {request_id} so it applies at most once" if request_id else ""
        return CliError(f"{refusal.message} (is `lienthong worker` running?){retry}")
    if refusal.kind is RefusalKind.ENGINE_UNAVAILABLE:
        retry = f"; retry with --request-id {request_id} so it applies at most once" if request_id else ""
        return CliError(f"Temporal refused: {refusal.message}{retry}")
    return CliError(f"refused: {refusal.message}" if refusal.by_workflow else refusal.message)


async def fetch_state(settings: Settings, dossier_id: str) -> DossierState:
    """The `state` query (a finished dossier answers it too)."""
    async with dossier_client(settings) as dossiers:
        try:
            return await dossiers.state(dossier_id)
        except Refusal as refusal:
            raise refused(refusal) from refusal
