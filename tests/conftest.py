"""Shared fixtures: a real Temporal (time-skipping test server from its wheel) and
real databases: every test asking for `db_url` runs on a SQLite file and on a real
PostgreSQL server.

PostgreSQL comes from ``$LIENTHONG_TEST_POSTGRES_URL`` (a server URL; each test gets a
fresh database on it), else from ``scripts/ensure-postgres.sh``, run once per session
(it installs and starts a throwaway server when it can). If neither works the
PostgreSQL tests fail with the reason: they are never skipped.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from services.binaries import temporal_test_server
from services.deploy import deploy_paths
from services.temporal import register_search_attributes
from store.db import database_url, make_engine, make_session_factory
from store.migrate import upgrade
from tests.support.codec import TEST_CONVERTER, TEST_KEYS

REPO = Path(__file__).resolve().parents[1]
ENSURE_POSTGRES = REPO / "scripts" / "ensure-postgres.sh"
URL_VAR = "LIENTHONG_TEST_POSTGRES_URL"
DEFINITIONS = REPO / "definitions"

# Every client, worker and in-process `lienthong` command of the tests encrypts
# payloads with the test key (a machine's own keys never leak in).
os.environ["LIENTHONG_CODEC_KEYS"] = TEST_KEYS
os.environ.pop("LIENTHONG_CODEC_KEY_ID", None)


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    if url := os.environ.get(URL_VAR):
        return database_url(url)
    try:
        proc = subprocess.run(
            ["bash", str(ENSURE_POSTGRES)], capture_output=True, text=True, timeout=900, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"PostgreSQL tests need a server: {ENSURE_POSTGRES} could not run ({exc}); set {URL_VAR}")
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not lines[-1].startswith("postgresql"):
        pytest.fail(
            f"PostgreSQL tests need a server: {ENSURE_POSTGRES} exited {proc.returncode}; "
            f"set {URL_VAR} to a server URL or fix the script.\n{proc.stderr[-3000:]}"
        )
    return lines[-1]


@contextmanager
def fresh_postgres_database(server: str, prefix: str = "lt") -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lienthong.db'}"
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_server_url")) as url:
        yield url


@pytest.fixture
def migrated_url(db_url: str) -> str:
    """An empty database of each kind, migrated to head: the one migrated-database
    fixture (the others below build on it)."""
    upgrade(db_url)
    return db_url


@pytest.fixture
def migrated_engine(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def migrated_sessions(migrated_engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(migrated_engine)


@pytest.fixture
def deployed_sessions(migrated_sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """A migrated database with the shipped definitions deployed (agencies, sectors, procedures)."""
    deploy_shipped(migrated_sessions)
    return migrated_sessions


def deploy_shipped(sessions: sessionmaker[Session]) -> None:
    deploy_paths(sessions, [DEFINITIONS], DEFINITIONS, "tests")




@asynccontextmanager
async def _time_skipping_server() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=TEST_CONVERTER,
        test_server_existing_path=temporal_test_server(),
    )
    try:
        await register_search_attributes(env.client)
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="module")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """One server per test module: a module's leftovers cannot stall another's clock."""
    async with _time_skipping_server() as env:
        yield env


@pytest.fixture
async def private_time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A server of its own: for tests that move its clock months ahead, or that
    leave webhook retries behind (the shared server stops skipping time while an
    activity cut off by a termination still counts as running)."""
    async with _time_skipping_server() as env:
        yield env
