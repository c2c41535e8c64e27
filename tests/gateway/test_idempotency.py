"""Idempotency-Key: a replayed POST is answered with the first answer and applied once,
whichever path the retry takes; the same key with another request is refused.
Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select

from services.instants import in_utc
from store.models import DossierEventRow, GatewayRequestRow
from tests.gateway.stack import DESK, LAND_OFFICE, Api
from workflows.dossier import DossierWorkflow
from workflows.payloads import CompleteStep

DATA = {"commune": "xa-tan-lap"}


@pytest.fixture(scope="module")
def desk(any_api: Api) -> str:
    return any_api.stack.token(DESK)


@pytest.fixture(scope="module")
def land(any_api: Api) -> str:
    return any_api.stack.token(LAND_OFFICE)


def completions(api: Api, dossier_id: str, step_id: str) -> list[DossierEventRow]:
    with api.stack.sessions()() as session:
        return list(session.scalars(select(DossierEventRow).where(
            DossierEventRow.dossier_id == dossier_id, DossierEventRow.kind == "step_completed",
            DossierEventRow.step_id == step_id)))


async def test_a_replayed_completion_gets_the_first_answer_and_applies_once(any_api: Api, desk: str) -> None:
    dossier = await any_api.submit(desk, DATA)
    await any_api.assigned(dossier, "tiep-nhan")
    path = f"/v1/dossiers/{dossier}/steps/tiep-nhan/complete"
    first = await any_api.post(path, desk, {"outcome": "approved", "note": "đủ"}, key="retry-1")
    assert first.status_code == 200 and "idempotent-replayed" not in first.headers, first.text
    await any_api.assigned(dossier, "tham-dinh")
    before = await any_api.settled(dossier)
    # Same key, same body (other spacing and key order): the first answer again, nothing changes.
    again = await any_api.http.post(path, content=b'{ "note": "\\u0111\\u1ee7",  "outcome": "approved" }', headers={
        "Authorization": f"Bearer {desk}", "Idempotency-Key": "retry-1", "Content-Type": "application/json"})
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert await any_api.settled(dossier) == before
    assert len(completions(any_api, dossier, "tiep-nhan")) == 1


async def test_the_same_key_with_another_request_is_refused(any_api: Api, desk: str) -> None:
    dossier = await any_api.submit(desk, DATA)
    other = await any_api.submit(desk, DATA)
    await any_api.assigned(dossier, "tiep-nhan")
    await any_api.assigned(other, "tiep-nhan")
    first = await any_api.post(f"/v1/dossiers/{dossier}/steps/tiep-nhan/complete", desk, {}, key="k-body")
    assert first.status_code == 200, first.text
    await any_api.assigned(dossier, "tham-dinh")
    before = (await any_api.settled(dossier), await any_api.settled(other))
    for path, body in ((f"/v1/dossiers/{dossier}/steps/tiep-nhan/complete", {"note": "khác"}),
                       (f"/v1/dossiers/{other}/steps/tiep-nhan/complete", {}),
                       (f"/v1/dossiers/{dossier}/resubmit", {})):
        reply = await any_api.post(path, desk, body, key="k-body")
        assert reply.status_code == 422 and reply.json()["type"] == "/problems/idempotency-key-reused", reply.text
    assert (await any_api.settled(dossier), await any_api.settled(other)) == before
    # Keys belong to an agency: another agency may use the same one for its own request.
    with any_api.stack.sessions()() as session:
        row = session.get(GatewayRequestRow, (DESK, "k-body"))
        assert row is not None and row.status_code == 200


async def test_a_retry_through_another_path_is_applied_once(any_api: Api, desk: str) -> None:
    """The key is the Temporal Update id (AGENCY:KEY): an Update sent directly (e.g. by
    `lienthong dossiers complete --request-id AGENCY:KEY`) and the gateway's retry are one change."""
    dossier = await any_api.submit(desk, DATA)
    await any_api.assigned(dossier, "tiep-nhan")
    key = f"via-temporal-{uuid.uuid4().hex[:6]}"
    handle = any_api.temporal.get_workflow_handle(dossier)
    await handle.execute_update(
        DossierWorkflow.complete_step, CompleteStep(step_id="tiep-nhan", agency=DESK), id=f"{DESK}:{key}")
    direct = await handle.query(DossierWorkflow.state)  # the Update answers briefly; the state after it
    await any_api.assigned(dossier, "tham-dinh")
    before = await any_api.settled(dossier)
    reply = await any_api.post(f"/v1/dossiers/{dossier}/steps/tiep-nhan/complete", desk, {}, key=key)
    assert reply.status_code == 200, reply.text  # not "not current": it is the same change
    assert reply.json()["steps"][0] == in_utc(direct).model_dump(mode="json")["steps"][0]  # answers are in UTC
    assert await any_api.settled(dossier) == before
    assert len(completions(any_api, dossier, "tiep-nhan")) == 1


async def test_concurrent_requests_with_one_key_apply_once(any_api: Api, desk: str) -> None:
    dossier = await any_api.submit(desk, DATA)
    await any_api.assigned(dossier, "tiep-nhan")
    path = f"/v1/dossiers/{dossier}/steps/tiep-nhan/complete"
    replies = await asyncio.gather(*(any_api.post(path, desk, {}, key="burst") for _ in range(10)))
    statuses = sorted(r.status_code for r in replies)
    assert set(statuses) <= {200, 409} and 200 in statuses, [r.text for r in replies]
    for reply in replies:
        if reply.status_code == 409:  # the first one was still running: come back later
            assert reply.json()["type"] == "/problems/idempotency-key-in-use" and reply.headers["retry-after"]
    later = await any_api.post(path, desk, {}, key="burst")
    assert later.status_code == 200
    await any_api.settled(dossier)
    assert len(completions(any_api, dossier, "tiep-nhan")) == 1


async def test_a_refusal_is_the_first_answer_too(any_api: Api, desk: str, land: str) -> None:
    """A refused request's answer is kept like any other: retrying the key repeats the
    refusal even once the change would be accepted; a new intent takes a new key."""
    dossier = await any_api.submit(desk, DATA)
    await any_api.assigned(dossier, "tiep-nhan")
    path = f"/v1/dossiers/{dossier}/steps/tham-dinh/complete"
    early = await any_api.post(path, land, {}, key="too-early")  # not its turn: the dossier is unknown to it
    assert early.status_code == 404 and early.json()["type"] == "/problems/unknown-dossier"
    assert (await any_api.post(f"/v1/dossiers/{dossier}/steps/tiep-nhan/complete", desk, {})).status_code == 200
    await any_api.assigned(dossier, "tham-dinh")
    before = await any_api.settled(dossier)
    again = await any_api.post(path, land, {}, key="too-early")
    assert again.status_code == 404 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == early.json()
    assert await any_api.settled(dossier) == before
    assert (await any_api.post(path, land, {}, key="now-current")).status_code == 200


async def test_a_replayed_submission_starts_one_dossier(any_api: Api, desk: str) -> None:
    dossier = f"HS-GW-{uuid.uuid4().hex[:8]}"
    body = {"procedure": "T.GW01", "dossier_id": dossier, "data": DATA, "channel": "postal"}
    first = await any_api.post("/v1/dossiers", desk, body, key="submit-1")
    assert first.status_code == 201 and first.headers["location"] == f"/v1/dossiers/{dossier}", first.text
    assert first.json()["due_at"] is not None and first.json()["procedure"] == "T.GW01@1"
    again = await any_api.post("/v1/dossiers", desk, body, key="submit-1")
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json() and again.headers["location"] == first.headers["location"]
    other = await any_api.post("/v1/dossiers", desk, body | {"dossier_id": dossier + "-2"}, key="submit-1")
    assert other.status_code == 422 and other.json()["type"] == "/problems/idempotency-key-reused"
    runs = [w async for w in any_api.temporal.list_workflows(f'WorkflowId = "{dossier}"')]
    assert len(runs) == 1
