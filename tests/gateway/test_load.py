"""Load: LOAD_AGENCIES agencies complete their steps at the same moment, from a second
process on loopback, against `lienthong dev` (Temporal dev server, worker and gateway
in one process, SQLite). Latencies are printed (and recorded in gateway/BENCHMARK.md),
never asserted; what is asserted is that every completion is applied exactly once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from typing import Any

from sqlalchemy import func, select

from store.models import DossierEventRow, InboxItemRow
from tests.gateway.stack import (
    DESK,
    LOAD_AGENCIES,
    LOAD_PROCEDURE,
    REPO,
    Api,
    load_agency,
)

TIMEOUT = 180  # seconds for a phase of the client; the subprocess gets a little more
ONE_BY_ONE = 20  # completions sent one at a time first: the latency of a quiet system


def run_client(api: Api, tmp_path: Any, name: str, phases: list[dict[str, Any]]) -> dict[str, Any]:
    plan = tmp_path / f"{name}.json"
    plan.write_text(json.dumps({"url": api.stack.url, "timeout": TIMEOUT, "phases": phases}), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "tests.gateway.load_client", str(plan)], capture_output=True,
                            text=True, timeout=TIMEOUT * len(phases) + 60, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr[-4000:] + api.stack.output()
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def show(report: dict[str, Any]) -> None:
    for phase, figures in report.items():
        print(f"\n{phase:>10}: {figures['requests']} requests {figures['concurrency']} at a time, "
              f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms "
              f"(p90 {figures['p90_ms']}, max {figures['max_ms']}), {figures['per_s']}/s over {figures['wall_s']} s, "
              f"statuses {figures['statuses']}, replayed {figures['replayed']}")


async def test_agencies_completing_steps_at_once(api: Api, tmp_path: Any) -> None:
    desk = api.stack.token(DESK)
    agencies = [load_agency(n) for n in range(1, LOAD_AGENCIES + 1)]
    tokens = {agency: api.stack.token(agency) for agency in agencies}
    dossiers = {agency: f"HS-TAI-{uuid.uuid4().hex[:10]}" for agency in agencies}
    quiet = {agency: f"HS-TAI-{uuid.uuid4().hex[:10]}" for agency in agencies[:ONE_BY_ONE]}
    both = [(agency, dossier) for agency, dossier in dossiers.items()] + list(quiet.items())

    submitted = run_client(api, tmp_path, "submit", [{"name": "submit", "requests": [
        {"path": "/v1/dossiers", "token": desk, "key": f"submit-{dossier}",
         "body": {"procedure": LOAD_PROCEDURE, "dossier_id": dossier, "data": {"agency": agency}}}
        for agency, dossier in both]}])
    assert submitted["submit"]["statuses"] == {"201": len(both)}, submitted

    # Every step is in its agency's inbox before the agencies act on it.
    for _ in range(600):
        with api.stack.sessions()() as session:
            routed = session.scalar(select(func.count()).select_from(InboxItemRow)
                                    .where(InboxItemRow.agency.in_(agencies))) or 0
        if routed == len(both):
            break
        await asyncio.sleep(0.1)
    assert routed == len(both)

    completions = [{"path": f"/v1/dossiers/{dossiers[agency]}/steps/xu-ly/complete", "token": tokens[agency],
                    "key": f"done-{agency}", "body": {"outcome": "approved", "note": "đã xử lý"}}
                   for agency in agencies]
    one_by_one = [{"path": f"/v1/dossiers/{dossier}/steps/xu-ly/complete", "token": tokens[agency],
                   "key": f"quiet-{agency}", "body": {"outcome": "approved"}} for agency, dossier in quiet.items()]
    report = run_client(api, tmp_path, "complete", [{"name": "one-by-one", "concurrency": 1, "requests": one_by_one},
                                                    {"name": "complete", "requests": completions},
                                                    {"name": "replay", "requests": completions}])
    show(submitted | report)
    assert report["one-by-one"]["statuses"] == {"200": ONE_BY_ONE}, report
    assert report["complete"]["statuses"] == {"200": LOAD_AGENCIES}, report
    assert report["replay"]["statuses"] == {"200": LOAD_AGENCIES} and report["replay"]["replayed"] == LOAD_AGENCIES

    for agency in agencies[:: max(1, LOAD_AGENCIES // 20)]:  # a sample: each one completed
        await api.until(dossiers[agency], lambda s: s.status == "completed", "completed")
    for _ in range(600):  # and exactly one completion each in the audit log
        with api.stack.sessions()() as session:
            done = session.execute(select(DossierEventRow.dossier_id, func.count()).where(
                DossierEventRow.dossier_id.in_([d for _, d in both]), DossierEventRow.kind == "step_completed")
                .group_by(DossierEventRow.dossier_id)).all()
        if len(done) == len(both):
            break
        await asyncio.sleep(0.1)
    assert len(done) == len(both) and {count for _, count in done} == {1}
