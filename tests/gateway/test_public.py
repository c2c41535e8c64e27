"""The applicants' lookup shows where a dossier is and nothing of its data."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from gateway.app import create_app
from gateway.context import GatewayContext, open_sessions
from tests.gateway.stack import DESK, LAND_OFFICE, Api

# Distinctive values: none of them can occur by chance in a date, a name or a status.
DATA = {
    "commune": "xa-tan-lap",  # fills the agency templates: agency *codes* would echo it
    "applicant": "Trần Thị Bích Ngọc",
    "citizen_id": "079203004567",
    "phone": "0912345678",
    "address": "Số 17 ngõ 42 đường Hoa Sữa",
    "area_m2": 987.65,
    "parcels": [{"map_sheet": "TBD-113", "parcel": 24681357}],
    "remarks": None,
    "joint_owner": True,
}
FIELDS = {"dossier_id", "procedure_code", "procedure_name", "status", "portal_status", "received_at",
          "appointment_at", "completed_at", "held_by"}


def leaves(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in leaves(item)]
    if isinstance(value, list):
        return [text for item in value for text in leaves(item)]
    if value is None or isinstance(value, bool):
        return []  # null/true appear in any JSON; they carry nothing of the applicant
    return [str(value)]


def no_data_in(reply_text: str) -> None:
    for value in leaves(DATA):
        assert value not in reply_text, f"{value!r} leaked: {reply_text}"
    assert "bpmc-xa" not in reply_text and "vpdk" not in reply_text  # no agency codes either


async def public(api: Api, dossier: str) -> dict[str, Any]:
    for _ in range(100):  # the projection is written just after the workflow moves
        reply = await api.get(f"/public/dossiers/{dossier}")
        if reply.status_code == 200:
            no_data_in(reply.text)
            body = reply.json()
            assert set(body) == FIELDS
            return body
    raise AssertionError(f"{dossier} never appeared publicly: {reply.text}")


async def test_the_public_status_shows_no_dossier_data(api: Api) -> None:
    desk, land = api.stack.token(DESK), api.stack.token(LAND_OFFICE)
    dossier = await api.submit(desk, DATA)
    await api.assigned(dossier, "tiep-nhan")
    await api.settled(dossier)
    first = await public(api, dossier)
    state = await api.state(dossier)
    assert first["status"] == "processing" and first["portal_status"] == 4
    assert first["procedure_code"] == "T.GW01" and first["procedure_name"] == state.procedure_name
    assert first["held_by"] == [{"name": "Trung tâm Phục vụ hành chính công xã Tân Lập"}]
    assert first["appointment_at"] is not None and first["completed_at"] is None

    assert (await api.post(f"/v1/dossiers/{dossier}/steps/tiep-nhan/complete", desk, {})).status_code == 200
    await api.assigned(dossier, "tham-dinh")
    asked = await api.post(f"/v1/dossiers/{dossier}/steps/tham-dinh/complete", land,
                           {"outcome": "supplement", "note": f"thiếu giấy của {DATA['applicant']}"})
    assert asked.status_code == 200
    await api.settled(dossier)
    waiting = await public(api, dossier)  # the note names the applicant: it must not show
    assert waiting["status"] == "awaiting_supplement" and waiting["portal_status"] == 5
    assert waiting["held_by"] == []  # the applicant holds it

    # The agencies' view has everything (the note), the public one still nothing.
    full = await api.get(f"/v1/dossiers/{dossier}", land)
    assert DATA["applicant"] in full.text
    no_data_in(json.dumps(await public(api, dossier), ensure_ascii=False))


async def test_an_unknown_dossier_is_a_problem(api: Api) -> None:
    for dossier in ("HS-KHONG-CO", "x" * 500, "%00"):
        reply = await api.get(f"/public/dossiers/{dossier}")
        assert reply.status_code == 404 and reply.headers["content-type"] == "application/problem+json"


async def test_healthz_says_a_worker_polls_the_task_queue(api: Api) -> None:
    reply = await api.get("/healthz")
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"status": "ok", "store": "ok", "temporal": "ok", "workers": "polling"}


async def test_healthz_without_a_worker_is_degraded_not_down(api: Api) -> None:
    # The same gateway on the same Temporal and store, for a task queue no worker polls.
    context = GatewayContext(client=api.temporal, sessions=open_sessions(api.stack.database_url),
                             task_queue=f"no-worker-{uuid.uuid4()}", definitions=api.stack.definitions)
    try:
        transport = httpx.ASGITransport(app=create_app(context))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            reply = await http.get("/healthz")
    finally:
        context.close()
    assert reply.status_code == 200, reply.text  # a load balancer keeps it: reads and submissions still work
    assert reply.json() == {"status": "degraded", "store": "ok", "temporal": "ok", "workers": "none"}
