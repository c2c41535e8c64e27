"""Activities write one JSON log line per transition, with the dossier id bound."""

from __future__ import annotations

import json

import pytest
import structlog

from config.logging import configure_logging
from tests.workflows.harness import assigned, complete, finished, running_worker, snapshot, start_dossier, until


@pytest.fixture
def json_logging():
    configure_logging("INFO", json=True)  # bound to the captured stderr of this test
    yield
    structlog.reset_defaults()


async def test_each_transition_is_one_json_line_with_the_dossier_id(time_skipping_env, capsys, json_logging):
    client = time_skipping_env.client
    snap = snapshot(steps=[{"id": "tiep-nhan", "agency": "bpmc-xa-{commune}", "deadline": "1d"}])
    async with running_worker(client) as tq:
        handle = await start_dossier(client, tq, snap)
        await until(handle, assigned("tiep-nhan"))
        await complete(handle, "tiep-nhan", "bpmc-xa-xa-tan-lap")
        await finished(handle)

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("dossier_id") == handle.id]
    # Activities run concurrently, so lines may interleave; `seq` is the order.
    events = sorted((line for line in mine if line["event"] == "dossier_event"), key=lambda e: e["seq"])
    assert [e["kind"] for e in events] == ["received", "step_assigned", "step_completed", "result_ready", "completed"]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    routed = [line for line in mine if line["event"] in ("step_routed", "step_withdrawn")]
    assert [(r["event"], r["agency"]) for r in routed] == [
        ("step_routed", "bpmc-xa-xa-tan-lap"), ("step_withdrawn", "bpmc-xa-xa-tan-lap")]
    assert all(line["level"] in ("info", "warning") and "timestamp" in line for line in mine)
