"""What every request handler needs: Temporal, the store, and where dossiers run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TypeVar

from fastapi import Request
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from config.settings import Settings
from services.codec import CodecAccess
from services.documents import Options
from services.documents.editions import DEFAULT_EDITION, EDITIONS
from services.dossiers import DossierClient
from services.report import ReportOptions
from store.db import database_url, make_engine, make_session_factory

T = TypeVar("T")
# The store is synchronous: its calls run on these threads, each with a connection of
# its own, so a burst of requests queues for a thread instead of timing out on the pool.
STORE_THREADS = 32


def open_sessions(url: str) -> sessionmaker[Session]:
    """Sessions whose pool has a connection for every store thread (an in-memory SQLite
    database has one connection per thread by design, and no pool to size)."""
    database = make_url(url)
    if database.get_backend_name() == "sqlite" and database.database in (None, "", ":memory:"):
        return make_session_factory(make_engine(url))
    return make_session_factory(make_engine(url, pool_size=STORE_THREADS, max_overflow=0))


@dataclass
class GatewayContext:
    client: Client
    sessions: sessionmaker[Session]
    task_queue: str
    definitions: Path
    codec_access: CodecAccess = field(default_factory=CodecAccess)  # the /codec endpoint's operators
    forms: Options = field(default_factory=lambda: Options(EDITIONS[DEFAULT_EDITION]))  # printed forms' settings
    report_options: ReportOptions = field(default_factory=ReportOptions)  # time zone and Biểu 06 choices

    @classmethod
    def from_settings(cls, client: Client, settings: Settings) -> GatewayContext:
        """The context a gateway process serves with: its store, queue, definitions, operators."""
        return cls(client, open_sessions(database_url(settings.database_url)), settings.task_queue,
                   settings.definitions, CodecAccess.from_settings(settings), Options.from_settings(settings),
                   ReportOptions.of(settings))
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="gateway-store"))

    async def read(self, work: Callable[[Session], T]) -> T:
        """Run `work` in a read-only session on a store thread."""

        def run() -> T:
            with self.sessions() as session:
                return work(session)

        return await asyncio.get_running_loop().run_in_executor(self.executor, run)

    async def write(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one transaction on a store thread."""

        def run() -> T:
            with self.sessions.begin() as session:
                return work(session)

        return await asyncio.get_running_loop().run_in_executor(self.executor, run)

    @cached_property
    def dossiers(self) -> DossierClient:
        return DossierClient(self.client, self.sessions, self.task_queue)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        bind = self.sessions.kw.get("bind")
        if bind is not None:
            bind.dispose()


def get_context(request: Request) -> GatewayContext:
    context: GatewayContext = request.app.state.context
    return context
