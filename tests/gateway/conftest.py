"""Gateway tests run against a real `lienthong dev` stack (see stack.py): a module's
tests share one, on SQLite, and where it is cheap also on PostgreSQL (`any_stack`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from temporalio.client import Client

from tests.conftest import fresh_postgres_database
from tests.gateway.stack import Api, Stack, start_stack
from tests.support.codec import TEST_CONVERTER


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack on SQLite."""
    folder = tmp_path_factory.mktemp("gateway")
    running = start_stack(folder, f"sqlite:///{folder / 'lienthong.db'}")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def any_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack on each database (the module's tests run twice)."""
    folder = tmp_path_factory.mktemp(f"gateway-{request.param}")
    if request.param == "sqlite":
        running = start_stack(folder, f"sqlite:///{folder / 'lienthong.db'}")
        try:
            yield running
        finally:
            running.stop()
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_server_url"), "lt_gw") as url:
        running = start_stack(folder, url)
        try:
            yield running
        finally:
            running.stop()


async def _api(running: Stack) -> AsyncIterator[Api]:
    temporal = await Client.connect(running.address, data_converter=TEST_CONVERTER)
    async with httpx.AsyncClient(base_url=running.url, timeout=60) as http:
        yield Api(running, http, temporal)


@pytest.fixture(scope="module")
async def api(stack: Stack) -> AsyncIterator[Api]:
    async for value in _api(stack):
        yield value


@pytest.fixture(scope="module")
async def any_api(any_stack: Stack) -> AsyncIterator[Api]:
    async for value in _api(any_stack):
        yield value


@pytest.fixture
def migrated(migrated_url: str) -> str:
    return migrated_url
