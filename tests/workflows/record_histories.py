"""Record dossier histories for the replay test.

    .venv/bin/python -m tests.workflows.record_histories TAG

writes `histories/<scenario>-<TAG>.json` (TAG names the code generation, e.g.
`with-webhooks`); older files stay: they are the dossiers already in flight.

Run it when a new workflow behaviour ships (after guarding the change with
`workflow.patched`), and commit the new files: dossiers in flight were recorded
under the old code, and the replay test keeps them replayable.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from tests.workflows.harness import (
    DATA,
    assigned,
    complete,
    extend,
    resubmit,
    running_worker,
    snapshot,
    start_dossier,
    until,
)
from workers.binaries import temporal_test_server
from workers.temporal import register_search_attributes

HERE = Path(__file__).parent / "histories"
PARALLEL_LAND = snapshot(
    code="R.000001", deadline="10d", supplement_deadline="3d",
    steps=[
        {"id": "tiep-nhan", "agency": "bpmc-xa-{commune}", "deadline": "0.5d"},
        {"parallel": [
            {"id": "xac-dinh-thue", "agency": "thue-co-so", "deadline": "2d", "escalate_to": "thue-tinh"},
            {"sequence": [
                {"id": "tham-dinh", "agency": "vpdk-tinh", "deadline": "3d"},
                {"id": "trinh-ky", "agency": "vpdk-tinh", "deadline": "1d", "when": {"field": "area_m2", "gt": 500}},
            ]},
        ]},
        {"id": "tra-ket-qua", "agency": "bpmc-xa-{commune}", "deadline": "0.5d"},
    ],
)


async def full_journey(env: WorkflowEnvironment) -> str:
    """Parallel branches, a skipped `when` step, an overdue escalation, an
    extension, a supplement pause and resubmission, completion."""
    client = env.client
    async with running_worker(client) as tq:
        h = await start_dossier(client, tq, PARALLEL_LAND, data=DATA, dossier_id="HS-REPLAY-JOURNEY")
        await until(h, assigned("tiep-nhan"))
        await complete(h, "tiep-nhan", "bpmc-xa-xa-tan-lap")
        await until(h, assigned("tham-dinh"))
        await complete(h, "tham-dinh", "vpdk-tinh", "supplement", note="thiếu trích đo địa chính")
        await env.sleep(timedelta(days=1))
        await resubmit(h, note="đã bổ sung")
        await env.sleep(timedelta(days=2, hours=1))
        s = await until(h, lambda s: s.step("xac-dinh-thue").overdue, "tax step overdue")
        await extend(h, "thue-co-so", s.step("xac-dinh-thue").due_at + timedelta(days=1), "chờ hồ sơ giá đất")
        await complete(h, "xac-dinh-thue", "thue-co-so")
        await complete(h, "tham-dinh", "vpdk-tinh")
        await until(h, assigned("tra-ket-qua"))
        await complete(h, "tra-ket-qua", "bpmc-xa-xa-tan-lap")
        await h.result()
        return (await h.fetch_history()).to_json()


async def rejected_after_supplement_expiry(env: WorkflowEnvironment) -> str:
    client = env.client
    async with running_worker(client) as tq:
        h = await start_dossier(client, tq, PARALLEL_LAND, data=DATA, dossier_id="HS-REPLAY-EXPIRED")
        await until(h, assigned("tiep-nhan"))
        await complete(h, "tiep-nhan", "bpmc-xa-xa-tan-lap", "supplement", note="thiếu CCCD")
        await env.sleep(timedelta(days=4))
        await h.result()
        return (await h.fetch_history()).to_json()


async def main(tag: str) -> None:
    HERE.mkdir(exist_ok=True)
    for scenario in (full_journey, rejected_after_supplement_expiry):
        env = await WorkflowEnvironment.start_time_skipping(
            data_converter=pydantic_data_converter, test_server_existing_path=temporal_test_server()
        )
        try:
            await register_search_attributes(env.client)
            path = HERE / f"{scenario.__name__}-{tag}.json"
            path.write_text(await scenario(env))
            print(f"wrote {path}")
        finally:
            await env.shutdown()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.workflows.record_histories TAG")
    asyncio.run(main(sys.argv[1]))
