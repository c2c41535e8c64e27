"""The life cycle of issue 14 through the gateway, on a real `lienthong dev` stack (SQLite
and PostgreSQL): `receive`, `refuse`, `withdraw`, `steps/{step}/return` and the
`obligation` outcome, each with its Idempotency-Key; every refusal a problem document
that changes nothing; agencies with no part in a dossier learn nothing of it.

T.GW03 (stack.py): tiep-nhan (the commune's desk) → tham-dinh (vpdk-tinh) → phe-duyet
(Sở NN&MT, may send it back to tham-dinh once) → tra-ket-qua (the result at the desk)."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from store.models import DossierEventRow
from tests.gateway.stack import COMMUNE, DEPARTMENT, DESK, LAND_OFFICE, LIFE_CYCLE_PROCEDURE, Api
from tests.gateway.test_refusals import _never_started, refused, unchanged

DATA = {"commune": "xa-tan-lap"}
OTHER_DESK = "bpmc-xa-xa-an-phu"  # a one-stop desk of another commune
PROVINCE_DESK = "bpmc-tinh"


@dataclass(frozen=True)
class Tokens:
    desk: str
    other_desk: str
    province: str
    commune: str
    land: str
    department: str


@pytest.fixture(scope="module")
def tokens(any_api: Api) -> Tokens:
    stack = any_api.stack
    return Tokens(desk=stack.token(DESK), other_desk=stack.token(OTHER_DESK), province=stack.token(PROVINCE_DESK),
                  commune=stack.token(COMMUNE), land=stack.token(LAND_OFFICE), department=stack.token(DEPARTMENT))


async def online(api: Api, token: str, data: dict[str, str] = DATA) -> str:
    dossier = f"HS-GW-LC-{uuid.uuid4().hex[:8]}"
    reply = await api.post("/v1/dossiers", token, {"procedure": LIFE_CYCLE_PROCEDURE, "dossier_id": dossier,
                                                    "data": data, "channel": "online"})
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert (body["status"], body["due_at"]) == ("submitted", None), body
    await api.until(dossier, lambda s: s.status == "submitted", "submitted")
    return dossier


async def received(api: Api, tokens: Tokens) -> str:
    """Received in person at the desk (no receipt to wait for)."""
    dossier = f"HS-GW-LC-{uuid.uuid4().hex[:8]}"
    reply = await api.post("/v1/dossiers", tokens.desk, {"procedure": LIFE_CYCLE_PROCEDURE, "dossier_id": dossier,
                                                         "data": DATA})
    assert reply.status_code == 201 and reply.json()["status"] == "processing", reply.text
    return dossier


async def complete(api: Api, dossier: str, step_id: str, token: str, body: dict[str, str] | None = None) -> dict:
    await api.assigned(dossier, step_id)
    reply = await api.post(f"/v1/dossiers/{dossier}/steps/{step_id}/complete", token, body or {})
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def portal_statuses(api: Api, dossier: str) -> list[int]:
    with api.stack.sessions()() as session:
        return [p for p in session.scalars(select(DossierEventRow.portal_status)
                                           .where(DossierEventRow.dossier_id == dossier)
                                           .order_by(DossierEventRow.seq)) if p is not None]


async def test_an_online_dossier_is_received_once_by_its_desk(any_api: Api, tokens: Tokens) -> None:
    dossier = await online(any_api, tokens.desk)
    receive = f"/v1/dossiers/{dossier}/receive"
    async with unchanged(any_api, dossier):
        # Agencies with no part in it (another commune's desk too): exactly as an id that does not exist.
        routes = [("GET", f"/v1/dossiers/{dossier}", None), ("GET", f"/v1/dossiers/{dossier}/sheet", None),
                  ("POST", f"/v1/dossiers/{dossier}/withdraw", {"note": "rút"})]
        desk_routes = [("POST", receive, {}), ("POST", f"/v1/dossiers/{dossier}/refuse", {"note": "không"})]
        for token, tried in ((tokens.land, routes), (tokens.commune, routes),
                             (tokens.other_desk, routes + desk_routes)):
            for method, path, body in tried:
                reply = await (any_api.get(path, token) if method == "GET" else any_api.post(path, token, body))
                problem = refused(reply, 404, "unknown-dossier")
                assert problem["detail"] == f"unknown dossier {dossier}"
        refused(await any_api.post(f"/v1/dossiers/{dossier}/withdraw", tokens.desk, {"note": "rút"}), 409,
                "not-received", "NotReceived")
        refused(await any_api.post(f"/v1/dossiers/{dossier}/withdraw", tokens.desk, {}), 422, "invalid-request")
        refused(await any_api.post(f"/v1/dossiers/{dossier}/refuse", tokens.desk, {"note": "   "}), 422,
                "note-required", "NoteRequired")
        refused(await any_api.post(receive, tokens.desk, {"note": "x", "extra": 1}), 422, "invalid-request")
    page = (await any_api.get("/v1/inbox", tokens.desk)).json()
    assert dossier in [w["dossier_id"] for w in page["awaiting_receipt"]]

    first = await any_api.post(receive, tokens.desk, {"note": "đủ thành phần"}, key=f"{dossier}-receive")
    assert first.status_code == 200, first.text
    assert first.json()["received_by"] == DESK and first.json()["status"] == "processing"
    again = await any_api.post(receive, tokens.desk, {"note": "đủ thành phần"}, key=f"{dossier}-receive")
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    state = await any_api.assigned(dossier, "tiep-nhan")
    assert state.portal_status == 4 and state.due_at is not None and state.received_by == DESK
    async with unchanged(any_api, dossier):
        refused(await any_api.post(receive, tokens.desk, {}), 409, "already-received", "AlreadyReceived")
        refused(await any_api.post(f"/v1/dossiers/{dossier}/refuse", tokens.desk, {"note": "muộn"}), 409,
                "already-received", "AlreadyReceived")
    await any_api.settled(dossier)
    assert portal_statuses(any_api, dossier) == [1, 2, 4]


async def test_only_a_receiving_desk_receives(any_api: Api, tokens: Tokens) -> None:
    """An agency that receives nothing is refused before any dossier is looked at: the same
    answer for an id that exists and one that does not."""
    dossier = await online(any_api, tokens.desk)
    async with unchanged(any_api, dossier):
        for path in (f"/v1/dossiers/{dossier}/receive", "/v1/dossiers/HS-GW-KHONG-CO/receive"):
            refused(await any_api.post(path, tokens.land, {}), 403, "not-a-receiving-desk")
        refused(await any_api.post("/v1/dossiers/HS-GW-KHONG-CO/refuse", tokens.land, {"note": "x"}), 403,
                "not-a-receiving-desk")


async def test_a_refusal_before_receipt_ends_it_unreceived(any_api: Api, tokens: Tokens) -> None:
    dossier = await online(any_api, tokens.desk)
    reply = await any_api.post(f"/v1/dossiers/{dossier}/refuse", tokens.desk,
                               {"note": "Thủ tục không thuộc thẩm quyền của xã"})
    assert reply.status_code == 200, reply.text
    assert (reply.json()["status"], reply.json()["portal_status"]) == ("not_received", 3)
    await any_api.until(dossier, lambda s: s.status == "not_received", "not received")
    async with unchanged(any_api, dossier):
        refused(await any_api.post(f"/v1/dossiers/{dossier}/receive", tokens.desk, {}), 409, "dossier-finished")
    assert portal_statuses(any_api, dossier) == [1, 3]
    public = (await any_api.get(f"/public/dossiers/{dossier}")).json()
    assert public["portal_status"] == 3 and public["held_by"] == []


async def test_an_online_submission_outside_the_desk_scope_starts_nothing(any_api: Api, tokens: Tokens) -> None:
    for token, words in ((tokens.other_desk, "for commune 'xa-tan-lap'"), (tokens.province, "(level xa)")):
        dossier = f"HS-GW-LC-SCOPE-{uuid.uuid4().hex[:6]}"
        problem = refused(await any_api.post("/v1/dossiers", token, {
            "procedure": LIFE_CYCLE_PROCEDURE, "dossier_id": dossier, "data": DATA, "channel": "online"}),
            422, "submission-refused")
        assert f"does not receive procedure {LIFE_CYCLE_PROCEDURE}@1" in problem["detail"] and words in problem["detail"]
        await _never_started(any_api, dossier)
    dossier = f"HS-GW-LC-SCOPE-{uuid.uuid4().hex[:6]}"
    problem = refused(await any_api.post("/v1/dossiers", tokens.desk, {
        "procedure": LIFE_CYCLE_PROCEDURE, "dossier_id": dossier, "data": DATA, "result_desk": LAND_OFFICE}),
        422, "submission-refused")
    assert f"--result-desk '{LAND_OFFICE}' does not receive dossiers" in problem["detail"]
    await _never_started(any_api, dossier)


async def test_an_obligation_then_a_return_then_completion_and_no_withdrawal_after_the_decision(
        any_api: Api, tokens: Tokens) -> None:
    dossier = await received(any_api, tokens)
    await complete(any_api, dossier, "tiep-nhan", tokens.desk)

    # The applicant pays (portal status 6): the step waits, the dossier is not sent back meanwhile.
    await any_api.assigned(dossier, "tham-dinh")
    step = f"/v1/dossiers/{dossier}/steps/tham-dinh"
    async with unchanged(any_api, dossier):
        refused(await any_api.post(f"{step}/complete", tokens.land, {"outcome": "obligation"}), 422,
                "note-required", "NoteRequired")
    asked = await any_api.post(f"{step}/complete", tokens.land, {"outcome": "obligation",
                                                                 "note": "Lệ phí trước bạ 2.400.000 đồng"})
    assert asked.status_code == 200, asked.text
    assert (asked.json()["status"], asked.json()["portal_status"]) == ("awaiting_obligation", 6)
    async with unchanged(any_api, dossier):
        refused(await any_api.post(f"{step}/complete", tokens.land, {}), 409, "awaiting-obligation",
                "AwaitingObligation")
    paid = await any_api.post(f"/v1/dossiers/{dossier}/resubmit", tokens.desk, {"note": "Biên lai số 0012"})
    assert paid.status_code == 200 and paid.json()["status"] == "processing", paid.text
    await complete(any_api, dossier, "tham-dinh", tokens.land)

    # Back to tham-dinh: the step's returns_to only, its agency only, once (max_returns: 1).
    await any_api.assigned(dossier, "phe-duyet")
    back = f"/v1/dossiers/{dossier}/steps/phe-duyet/return"
    async with unchanged(any_api, dossier):
        problem = refused(await any_api.post(back, tokens.department, {"to": "tiep-nhan", "note": "sai"}), 422,
                          "bad-return", "BadReturn")
        assert "tham-dinh" in problem["detail"]
        refused(await any_api.post(back, tokens.land, {"to": "tham-dinh", "note": "sai"}), 403, "wrong-agency",
                "WrongAgency")
        refused(await any_api.post(back, tokens.department, {"to": "tham-dinh"}), 422, "invalid-request")
        refused(await any_api.post(back, tokens.department, {"to": "tham-dinh", "note": "  "}), 422,
                "note-required", "NoteRequired")
        refused(await any_api.post(back, tokens.commune, {"to": "tham-dinh", "note": "sai"}), 404, "unknown-dossier")
    legal_due = (await any_api.state(dossier)).original_due_at
    sent = await any_api.post(back, tokens.department, {"to": "tham-dinh", "note": "Chưa đạt: thiếu trích đo"},
                              key=f"{dossier}-return")
    assert sent.status_code == 200, sent.text
    replay = await any_api.post(back, tokens.department, {"to": "tham-dinh", "note": "Chưa đạt: thiếu trích đo"},
                                key=f"{dossier}-return")
    assert replay.json() == sent.json() and replay.headers["idempotent-replayed"] == "true"
    state = await any_api.assigned(dossier, "tham-dinh")
    assert state.return_count == 1 and state.original_due_at == legal_due
    await complete(any_api, dossier, "tham-dinh", tokens.land)
    await any_api.assigned(dossier, "phe-duyet")
    async with unchanged(any_api, dossier):
        refused(await any_api.post(back, tokens.department, {"to": "tham-dinh", "note": "lại"}), 409,
                "return-limit", "ReturnLimit")
    await complete(any_api, dossier, "phe-duyet", tokens.department)

    # Status 9: decided. A withdrawal is refused with why, and nothing changes.
    decided = await any_api.assigned(dossier, "tra-ket-qua")
    assert decided.status == "result_ready" and decided.portal_status == 9
    async with unchanged(any_api, dossier):
        problem = refused(await any_api.post(f"/v1/dossiers/{dossier}/withdraw", tokens.desk, {"note": "xin rút"}),
                          409, "decision-made", "DecisionMade")
        assert "Art. 21" in problem["detail"]
        refused(await any_api.post(f"/v1/dossiers/{dossier}/steps/tra-ket-qua/complete", tokens.desk,
                                   {"outcome": "rejected", "note": "x"}), 409, "decision-made", "DecisionMade")
    done = await complete(any_api, dossier, "tra-ket-qua", tokens.desk)
    assert done["status"] == "completed" and done["portal_status"] == 10

    await any_api.settled(dossier)
    sheet = (await any_api.get(f"/v1/dossiers/{dossier}/sheet", tokens.land)).json()
    assert [(h["step_id"], h["status"], h["earlier_pass"]) for h in sheet["handovers"]] == [
        ("tiep-nhan", "completed", False), ("tham-dinh", "completed", True), ("phe-duyet", "returned", True),
        ("tham-dinh", "completed", False), ("phe-duyet", "completed", False), ("tra-ket-qua", "completed", False)]
    assert [c["portal_status"] for c in sheet["portal_history"]] == [2, 4, 6, 4, 9, 10]
    assert portal_statuses(any_api, dossier) == [2, 4, 6, 4, 9, 10]


async def test_a_withdrawal_stops_it_and_empties_the_inboxes(any_api: Api, tokens: Tokens) -> None:
    dossier = await online(any_api, tokens.desk)
    assert (await any_api.post(f"/v1/dossiers/{dossier}/receive", tokens.desk, {})).status_code == 200
    await complete(any_api, dossier, "tiep-nhan", tokens.desk)
    await any_api.assigned(dossier, "tham-dinh")
    async with unchanged(any_api, dossier):  # the commune has no part; the department none yet
        for token in (tokens.commune, tokens.department):
            refused(await any_api.post(f"/v1/dossiers/{dossier}/withdraw", token, {"note": "rút"}), 404,
                    "unknown-dossier")
    reply = await any_api.post(f"/v1/dossiers/{dossier}/withdraw", tokens.desk, {"note": "Đơn xin rút ngày 24/11"})
    assert reply.status_code == 200, reply.text
    assert (reply.json()["status"], reply.json()["portal_status"]) == ("withdrawn", 8)
    await any_api.until(dossier, lambda s: s.status == "withdrawn", "withdrawn")
    await any_api.settled(dossier)
    inbox = (await any_api.get("/v1/inbox?limit=200", tokens.land)).json()
    assert dossier not in [i["dossier_id"] for i in inbox["items"]]
    assert portal_statuses(any_api, dossier)[-2:] == [7, 8]
    async with unchanged(any_api, dossier):
        refused(await any_api.post(f"/v1/dossiers/{dossier}/withdraw", tokens.desk, {"note": "lại"}), 409,
                "dossier-finished")


async def test_a_desk_whose_scope_no_longer_covers_a_dossier_may_refuse_it_not_receive_it(
        any_api: Api, tokens: Tokens, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Runs last: it deploys a province-wide list without T.GW01, then the original again."""
    stack = any_api.stack
    dossier = f"HS-GW-LC-{uuid.uuid4().hex[:8]}"
    reply = await any_api.post("/v1/dossiers", tokens.province, {"procedure": "T.GW01", "dossier_id": dossier,
                                                                 "data": DATA, "channel": "online"})
    assert reply.status_code == 201, reply.text  # on the province-wide list: the province desk receives it
    await any_api.until(dossier, lambda s: s.status == "submitted", "submitted")
    narrower = tmp_path_factory.mktemp("narrower") / "definitions"
    shutil.copytree(stack.definitions, narrower)
    agencies = narrower / "agencies.yaml"
    agencies.write_text(agencies.read_text(encoding="utf-8").replace('  - "T.GW01"\n', "", 1), encoding="utf-8")
    try:
        deployed = stack.lienthong("definitions", "deploy", str(narrower))
        assert deployed.returncode == 0, deployed.stderr
        async with unchanged(any_api, dossier):
            problem = refused(await any_api.post(f"/v1/dossiers/{dossier}/receive", tokens.province, {}), 403,
                              "outside-receiving-scope", "OutOfScope")
            assert f"desk '{PROVINCE_DESK}' does not receive procedure T.GW01@1 (level xa)" in problem["detail"]
        refusal = await any_api.post(f"/v1/dossiers/{dossier}/refuse", tokens.province,
                                     {"note": "Không còn trong danh mục tiếp nhận không phụ thuộc địa giới"})
        assert refusal.status_code == 200 and refusal.json()["status"] == "not_received", refusal.text
    finally:
        restored = stack.lienthong("definitions", "deploy", str(stack.definitions))
        assert restored.returncode == 0, restored.stderr
