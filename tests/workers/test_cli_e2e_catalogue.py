"""Every shipped procedure runs on `lienthong dev`: submitted through the CLI at the demo
province's desks, routed to each agency's inbox, completed by those agencies through the
CLI, and finished; the projection agrees with the workflow at the end.

(The time-skipping journeys in tests/workflows/test_catalogue_journeys.py check each
procedure's route in detail; this is the same catalogue through the real processes.)
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from temporalio.client import Client

from definitions.loader import load_catalog
from store import inbox
from tests.support.codec import TEST_CONVERTER
from tests.workers.conftest import DevStack, StackCli
from tests.workers.test_cli_e2e import until_projected
from tests.workflows.catalogue import expected_agencies, journey_data, shipped_files, shipped_snapshot
from workflows.dossier import DossierWorkflow
from workflows.payloads import DossierState

ROUNDS = 1500  # polls of every open dossier: a bound on waiting, not a timing assertion


def desk_for(procedure_level: str, commune: str) -> str:
    """The one-stop desk that receives it: the commune's, or the province's centre."""
    return f"bpmc-xa-{commune}" if procedure_level == "xa" else "bpmc-tinh"


def test_every_shipped_procedure_runs_on_the_dev_stack(dev_stack: DevStack) -> None:
    cli = StackCli(dev_stack)
    catalog = load_catalog(dev_stack.definitions)
    plans: dict[str, dict[str, Any]] = {}
    for path in shipped_files():
        procedure = shipped_snapshot(path).procedure
        data = journey_data(procedure)
        dossier = f"HS-CAT-{procedure.code}-{uuid.uuid4().hex[:6]}"
        desk = desk_for(procedure.level, data["commune"])
        assert desk in catalog.agencies, f"{path.name}: the demo province has no desk {desk}"
        out = cli.ok("dossiers", "submit", "--procedure", procedure.code, "--id", dossier,
                     "--data", json.dumps(data, ensure_ascii=False), "--received-by", desk)
        assert f"{procedure.code}@{procedure.version}" in out, out
        plans[dossier] = {"file": path.name, "agencies": expected_agencies(procedure, data), "seen_in_inbox": set()}
    assert len(plans) >= 8

    # Agencies act through the CLI (a process per completion); the test watches the
    # workflows and the inboxes in-process, so polling costs no process start-ups.
    loop = asyncio.new_event_loop()
    client = loop.run_until_complete(Client.connect(dev_stack.address, data_converter=TEST_CONVERTER))
    sessions = dev_stack.sessions()

    def current(dossier: str) -> dict[str, Any]:
        handle = client.get_workflow_handle_for(DossierWorkflow.run, dossier)
        return loop.run_until_complete(handle.query(DossierWorkflow.state)).model_dump(mode="json")

    def in_inbox(agency: str, dossier: str, step_id: str) -> bool:
        with sessions() as session:
            return any(item.dossier_id == dossier and item.step_id == step_id
                       for item in inbox.list_items(session, agency, 500, 0, now=datetime.now(UTC)))

    finished: dict[str, dict[str, Any]] = {}
    for _ in range(ROUNDS):
        for dossier, plan in plans.items():
            if dossier in finished:
                continue
            state = current(dossier)
            if DossierState.model_validate(state).finished:
                finished[dossier] = state
                continue
            for step in state["steps"]:
                if step["status"] != "assigned":
                    continue
                agency = plan["agencies"][step["id"]]
                assert step["agency"] == agency, f"{plan['file']}: {step['id']} routed to {step['agency']}"
                if not in_inbox(agency, dossier, step["id"]):
                    continue  # the routing activity writes the inbox row just after; next round
                plan["seen_in_inbox"].add(step["id"])
                cli.ok("dossiers", "complete", dossier, step["id"], "--agency", agency,
                       "--request-id", f"{dossier}-{step['id']}")
        if len(finished) == len(plans):
            break
        time.sleep(0.1)
    sessions.kw["bind"].dispose()
    loop.close()
    unfinished = sorted(set(plans) - set(finished))
    assert not unfinished, f"not finished: {[(d, plans[d]['file']) for d in unfinished]}\n{dev_stack.output()}"

    for dossier, state in finished.items():
        plan = plans[dossier]
        assert state["status"] == "completed" and state["portal_status"] == 10, plan["file"]
        routed = {step_id for step_id, agency in plan["agencies"].items() if agency is not None}
        assert plan["seen_in_inbox"] == routed, plan["file"]  # every step went through an inbox
        for step in state["steps"]:
            assert step["status"] == ("completed" if step["id"] in routed else "skipped"), (plan["file"], step)
        stored = until_projected(dev_stack, dossier, state["last_event_seq"])
        assert stored.model_dump(mode="json") == DossierState.model_validate(state).model_dump(mode="json")
    print(f"\n{len(finished)} procedures run end to end on lienthong dev: "
          + ", ".join(sorted(plans[d]["file"].removesuffix(".yaml") for d in finished)))

