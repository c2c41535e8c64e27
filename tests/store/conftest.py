"""Store tests run on both databases through the `db_url` fixture (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from store.db import make_engine, make_session_factory
from store.migrate import upgrade


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated database."""
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)
