"""Fixtures of the workflow tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def env(time_skipping_env):
    """The shared time-skipping server (tests that move its clock far use their own)."""
    return time_skipping_env
