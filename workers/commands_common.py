"""What every `lienthong` command shares: the refusal type, Temporal and database
access that turn every failure into one line, and how instants are shown."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.service import RPCError, RPCStatusCode

from store.db import database_url
from config.settings import Settings
from workers.submission import LOCAL_TZ
from workers.temporal import connect
from workers.worker import StoreNotReadyError, open_store
from workflows.dossier import DossierWorkflow
from workflows.payloads import DossierState

QUERY_TIMEOUT = timedelta(seconds=10)  # a query needs a worker; don't hang without one


class CliError(Exception):
    """A refusal: printed as one line on stderr, exit code 1. `details` (e.g. every
    `PATH:LINE: message` of a broken file) are printed on stdout before it."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = list(details or [])


# ----------------------------------------------------------------------------- text


def when(at: datetime | None) -> str:
    """Instants in Vietnam time: that is the clock the deadlines are read on."""
    return at.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M") if at else "-"


def one_line(err: BaseException | str) -> str:
    text = " ".join(str(err).split())
    return text or (type(err).__name__ if isinstance(err, BaseException) else "")


def print_table(rows: list[tuple[str, ...]], *, markers: list[str] | None = None) -> None:
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


async def connect_or_refuse(settings: Settings) -> Client:
    try:
        return await connect(settings)
    except Exception as err:  # the SDK raises RuntimeError with the transport's story
        raise CliError(f"cannot reach Temporal at {settings.temporal_address}: {transport_reason(err)}") from err


def transport_reason(err: BaseException) -> str:
    # The Rust core nests the OS message deep inside; surface it when it is there.
    found = re.search(r'message: "([^"]+)"', str(err))
    return found.group(1) if found else one_line(err)


def dossier_handle(client: Client, dossier_id: str) -> WorkflowHandle[Any, DossierState]:
    return client.get_workflow_handle_for(DossierWorkflow.run, dossier_id)  # type: ignore[arg-type]


async def workflow_state(client: Client, dossier_id: str) -> DossierState:
    """The `state` query (a finished dossier answers it too: a worker replays its
    history; the result itself is only a summary)."""
    handle = dossier_handle(client, dossier_id)
    try:
        return await handle.query(DossierWorkflow.state, rpc_timeout=QUERY_TIMEOUT)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise CliError(f"unknown dossier {dossier_id}") from err
        if err.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            raise CliError(f"no worker answered for dossier {dossier_id} within {QUERY_TIMEOUT.seconds}s "
                           "(is `lienthong worker` running?)") from err
        raise CliError(f"Temporal refused the query: {one_line(err)}") from err
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as err:
        raise CliError(f"dossier {dossier_id} cannot answer: {one_line(err)}") from err


async def fetch_state(settings: Settings, dossier_id: str) -> DossierState:
    return await workflow_state(await connect_or_refuse(settings), dossier_id)
