"""The store's tests name the root fixtures (tests/conftest.py) `engine` and `sessions`."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker


@pytest.fixture
def engine(migrated_engine: Engine) -> Engine:
    return migrated_engine


@pytest.fixture
def sessions(migrated_sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    return migrated_sessions
