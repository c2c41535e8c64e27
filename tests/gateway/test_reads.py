"""What an agency reads: who its token is, its inbox page by page, a dossier's state,
sheet and timeline (live, or from the projection once Temporal has forgotten the dossier)."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from store import projection
from tests.gateway.stack import DESK, LAND_OFFICE, Api
from workflows.payloads import DossierState

DATA = {"commune": "xa-tan-lap"}
SVG = "{http://www.w3.org/2000/svg}"
PROVINCE_DESK = "bpmc-tinh"  # a one-stop desk with no step in T.GW01


async def test_who_a_token_acts_as(api: Api) -> None:
    reply = await api.get("/v1/agency", api.stack.token(LAND_OFFICE))
    assert reply.status_code == 200
    body = reply.json()
    assert body["code"] == LAND_OFFICE and body["receives_dossiers"] is False and len(body["token_id"]) == 12


async def test_the_inbox_pages_most_urgent_first(api: Api) -> None:
    desk, land = api.stack.token(DESK), api.stack.token(LAND_OFFICE)
    dossiers = [await api.submit(desk, DATA) for _ in range(5)]
    for dossier in dossiers:
        await api.assigned(dossier, "tiep-nhan")
        assert (await api.post(f"/v1/dossiers/{dossier}/steps/tiep-nhan/complete", desk, {})).status_code == 200
    for dossier in dossiers:
        await api.assigned(dossier, "tham-dinh")
        await api.settled(dossier)
    seen: list[dict] = []
    offset: int | None = 0
    while offset is not None:
        page = await api.get(f"/v1/inbox?limit=2&offset={offset}", land)
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["agency"] == LAND_OFFICE and body["limit"] == 2 and len(body["items"]) <= 2
        seen += body["items"]
        offset = body["next_offset"]
    mine = [item for item in seen if item["dossier_id"] in dossiers]
    assert sorted(item["dossier_id"] for item in mine) == sorted(dossiers)
    assert all(item["step_id"] == "tham-dinh" and item["procedure"] == "T.GW01@1" and not item["overdue"]
               for item in mine)
    dues = [item["due_at"] for item in seen]
    assert dues == sorted(dues)
    for bad in ("limit=0", "limit=201", "offset=-1", "limit=x"):
        reply = await api.get(f"/v1/inbox?{bad}", land)
        assert reply.status_code == 422 and reply.json()["type"] == "/problems/invalid-request", bad


async def test_a_dossier_and_its_sheet_for_the_agencies_on_it(api: Api) -> None:
    desk, land = api.stack.token(DESK), api.stack.token(LAND_OFFICE)
    province = api.stack.token(PROVINCE_DESK)
    dossier_id = f"HS-GW-{uuid.uuid4().hex[:8]}"
    # Submitted online to the provincial desk (Art. 14: T.GW01 is on the province-wide list),
    # received there, routed to the commune's: both may read it. Before receipt only the
    # desk it is addressed to knows it.
    received = await api.post("/v1/dossiers", province, {"procedure": "T.GW01", "dossier_id": dossier_id,
                                                         "data": DATA, "channel": "online"})
    assert received.status_code == 201, received.text
    assert received.json()["status"] == "submitted" and received.json()["due_at"] is None
    await api.until(dossier_id, lambda s: s.status == "submitted", "submitted")
    assert (await api.get(f"/v1/dossiers/{dossier_id}", province)).json()["portal_status"] == 1
    for token in (desk, land):
        assert (await api.get(f"/v1/dossiers/{dossier_id}", token)).status_code == 404
    taken = await api.post(f"/v1/dossiers/{dossier_id}/receive", province, {})
    assert taken.status_code == 200 and taken.json()["received_by"] == PROVINCE_DESK, taken.text
    await api.assigned(dossier_id, "tiep-nhan")
    for token in (province, desk):
        reply = await api.get(f"/v1/dossiers/{dossier_id}", token)
        assert reply.status_code == 200 and reply.headers["lienthong-source"] == "workflow", reply.text
        assert DossierState.model_validate(reply.json()) == await api.state(dossier_id)
    assert (await api.get(f"/v1/dossiers/{dossier_id}", land)).status_code == 404  # not yet its turn: unknown to it
    assert (await api.post(f"/v1/dossiers/{dossier_id}/steps/tiep-nhan/complete", desk, {})).status_code == 200
    await api.assigned(dossier_id, "tham-dinh")
    sheet = await api.get(f"/v1/dossiers/{dossier_id}/sheet", land)
    assert sheet.status_code == 200, sheet.text
    body = sheet.json()
    assert body["source"] == "workflow" and body["channel"] == "online"
    # The receiving desk and the competent agencies, both on the sheet (Art. 14).
    assert body["received_by"] == PROVINCE_DESK and body["result_desk"] == PROVINCE_DESK
    assert [(h["step_id"], h["from"], h["to"]) for h in body["handovers"]] == [
        ("tiep-nhan", "applicant", DESK), ("tham-dinh", DESK, LAND_OFFICE)]
    assert [c["portal_status"] for c in body["portal_history"]] == [1, 2, 4]
    await api.settled(dossier_id)  # the inbox reads the store
    inbox = (await api.get("/v1/inbox?limit=200", land)).json()
    assert next(i for i in inbox["items"] if i["dossier_id"] == dossier_id)["received_by"] == PROVINCE_DESK


async def test_a_dossier_temporal_has_forgotten_is_read_from_the_projection(api: Api) -> None:
    """Closed workflows leave Temporal after the namespace's retention; the stored
    projection still answers (and says so)."""
    desk = api.stack.token(DESK)
    dossier = await api.submit(desk, DATA)
    await api.assigned(dossier, "tiep-nhan")
    state = (await api.state(dossier)).model_copy(update={"dossier_id": f"{dossier}-OLD", "last_event_seq": 1})
    with api.stack.sessions().begin() as session:
        projection.apply_state(session, state, 1)
    reply = await api.get(f"/v1/dossiers/{dossier}-OLD", desk)
    assert reply.status_code == 200 and reply.headers["lienthong-source"] == "projection", reply.text
    assert reply.json()["dossier_id"] == f"{dossier}-OLD"
    sheet = await api.get(f"/v1/dossiers/{dossier}-OLD/sheet", desk)
    assert sheet.status_code == 200 and sheet.json()["source"] == "projection"
    assert (await api.get(f"/v1/dossiers/{dossier}-OLD", api.stack.token(LAND_OFFICE))).status_code == 404


async def test_the_timeline_picture_for_the_agencies_on_it(api: Api) -> None:
    """A dossier received three days ago (T.GW01, continuous calendar: working time is
    wall-clock time): its first step late (too late to extend), a supplement asked and brought."""
    desk, land = api.stack.token(DESK), api.stack.token(LAND_OFFICE)
    dossier_id = f"HS-GW-TL-{uuid.uuid4().hex[:8]}"
    received = (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0)
    reply = await api.post("/v1/dossiers", desk, {"procedure": "T.GW01", "dossier_id": dossier_id, "data": DATA,
                                                  "received_at": received.isoformat()})
    assert reply.status_code == 201, reply.text
    await api.until(dossier_id, lambda s: (st := s.step("tiep-nhan")) is not None and st.overdue, "tiep-nhan late")
    until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    # Too late for a new appointment (Mẫu 04: at least a working day before the due).
    extended = await api.post(f"/v1/dossiers/{dossier_id}/extend", desk,
                              {"until": until, "reason": "Hồ sơ giấy nhập muộn", "step_id": "tiep-nhan"})
    assert extended.status_code == 409 and extended.json()["type"] == "/problems/extension-too-late", extended.text
    asked = await api.post(f"/v1/dossiers/{dossier_id}/steps/tiep-nhan/complete", desk,
                           {"outcome": "supplement", "note": "Thiếu bản sao giấy tờ tùy thân"})
    assert asked.status_code == 200, asked.text
    assert (await api.post(f"/v1/dossiers/{dossier_id}/resubmit", desk, {"note": "đã bổ sung"})).status_code == 200
    assert (await api.post(f"/v1/dossiers/{dossier_id}/steps/tiep-nhan/complete", desk, {})).status_code == 200
    state = await api.assigned(dossier_id, "tham-dinh")
    await api.settled(dossier_id)

    reply = await api.get(f"/v1/dossiers/{dossier_id}/timeline", land)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "image/svg+xml" and reply.headers["lienthong-source"] == "workflow"
    root = ET.fromstring(reply.content)
    left, per_second = float(root.get("data-plot-left")), float(root.get("data-px-per-working-hour")) / 3600

    def x(at: datetime) -> float:  # continuous calendar: working time is wall-clock time
        return left + (at - received).total_seconds() * per_second

    rows = [g for g in root.iter(f"{SVG}g") if "row" in (g.get("class") or "").split()]
    assert [(g.get("data-step"), g.get("data-pass")) for g in rows] == [("tiep-nhan", "1"), ("tham-dinh", "1")]
    first = state.step("tiep-nhan")
    assert first is not None and first.verdict == "late" and first.original_due_at == received + timedelta(days=1)

    def shapes(row: ET.Element, cls: str) -> list[ET.Element]:
        return [e for e in row if cls in (e.get("class") or "").split()]

    (late,) = shapes(rows[0], "late")
    assert abs(float(late.get("x")) - x(first.original_due_at)) < 0.02
    assert abs(float(late.get("x")) + float(late.get("width")) - x(first.completed_at)) < 0.02
    assert not shapes(rows[1], "late")
    (pause,) = [r for r in root.iter(f"{SVG}rect") if r.get("data-kind") == "supplement"]
    requested, back = (n.at for n in state.notes if n.kind in ("supplement_requested", "resubmitted"))
    assert abs(float(pause.get("x")) - x(requested)) < 0.02
    assert abs(float(pause.get("width")) - (back - requested).total_seconds() * per_second) < 0.02
    assert "Thủ tục thử cổng giao tiếp" in reply.text and "Tiếp nhận (2)" in reply.text

    # The desk that received it reads it too; an agency with no part in it gets what an
    # id that does not exist gets.
    assert (await api.get(f"/v1/dossiers/{dossier_id}/timeline", desk)).status_code == 200
    stranger = await api.get(f"/v1/dossiers/{dossier_id}/timeline", api.stack.token(PROVINCE_DESK))
    unknown = await api.get("/v1/dossiers/HS-GW-KHONG-CO/timeline", api.stack.token(PROVINCE_DESK))
    assert stranger.status_code == unknown.status_code == 404
    assert stranger.headers["content-type"] == "application/problem+json"
    assert stranger.json()["detail"] == f"unknown dossier {dossier_id}"
    assert unknown.json()["detail"] == "unknown dossier HS-GW-KHONG-CO"
    assert stranger.json()["type"] == unknown.json()["type"] == "/problems/unknown-dossier"
    assert (await api.get(f"/v1/dossiers/{dossier_id}/timeline")).status_code == 401
