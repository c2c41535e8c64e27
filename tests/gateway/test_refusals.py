"""Every refusal the gateway gives, and that the dossier is unchanged by it: its
state, its Temporal history, its projection and its audit log stay as they were.
Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from temporalio.service import RPCError, RPCStatusCode

from tests.gateway.stack import COMMUNE, DESK, LAND_OFFICE, Api

DATA = {"commune": "xa-tan-lap"}
PROBLEM = "application/problem+json"


@dataclass(frozen=True)
class Tokens:
    desk: str
    commune: str
    land: str


@pytest.fixture(scope="module")
def tokens(any_api: Api) -> Tokens:
    stack = any_api.stack
    return Tokens(desk=stack.token(DESK), commune=stack.token(COMMUNE), land=stack.token(LAND_OFFICE))


def refused(reply: httpx.Response, status: int, slug: str, kind: str | None = None) -> dict:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == PROBLEM
    problem = reply.json()
    assert problem["type"] == f"/problems/{slug}" and problem["status"] == status, problem
    assert problem["title"] and problem["instance"] == reply.request.url.path
    if kind is not None:
        assert problem["kind"] == kind
    return problem


@asynccontextmanager
async def unchanged(api: Api, dossier_id: str) -> AsyncIterator[None]:
    before = await api.settled(dossier_id)
    yield
    assert await api.settled(dossier_id) == before


async def started(api: Api, tokens: Tokens) -> str:
    dossier = await api.submit(tokens.desk, DATA)
    await api.assigned(dossier, "tiep-nhan")
    return dossier


async def at_land_office(api: Api, tokens: Tokens) -> str:
    dossier = await started(api, tokens)
    done = await api.post(f"/v1/dossiers/{dossier}/steps/tiep-nhan/complete", tokens.desk, {})
    assert done.status_code == 200, done.text
    await api.assigned(dossier, "tham-dinh")
    return dossier


async def test_401_without_a_valid_token(any_api: Api, tokens: Tokens) -> None:
    dossier = await started(any_api, tokens)
    path = f"/v1/dossiers/{dossier}/steps/tiep-nhan/complete"
    issued = any_api.stack.lienthong("agencies", "issue-token", DESK)
    assert issued.returncode == 0, issued.stderr
    revoked_token = issued.stdout.strip()
    token_id = revoked_token.split("_")[1]
    assert any_api.stack.lienthong("agencies", "revoke-token", token_id).returncode == 0
    async with unchanged(any_api, dossier):
        for token in (None, "not-a-token", tokens.desk[:-2] + "xx", revoked_token):
            reply = await any_api.post(path, token, {})
            refused(reply, 401, "unauthorized")
            assert reply.headers["www-authenticate"].startswith("Bearer")
        refused(await any_api.get("/v1/inbox"), 401, "unauthorized")
        refused(await any_api.get(f"/v1/dossiers/{dossier}", revoked_token), 401, "unauthorized")


async def test_403_the_step_of_another_agency(any_api: Api, tokens: Tokens) -> None:
    # The desk has a part in the dossier (it received it and did tiep-nhan): it may read
    # the whole state, so the refusal may name the step's holder.
    dossier = await at_land_office(any_api, tokens)
    async with unchanged(any_api, dossier):
        for body in ({}, {"outcome": "rejected", "note": "không phải của tôi"}):
            problem = refused(await any_api.post(f"/v1/dossiers/{dossier}/steps/tham-dinh/complete", tokens.desk,
                                                 body), 403, "wrong-agency", "WrongAgency")
            assert LAND_OFFICE in problem["detail"]
        refused(await any_api.post(f"/v1/dossiers/{dossier}/extend", tokens.desk,
                                   {"until": _later(), "reason": "chờ", "step_id": "tham-dinh"}),
                403, "wrong-agency", "WrongAgency")


def _as_unknown(reply: httpx.Response, dossier: str, unknown: httpx.Response) -> None:
    """The answer to an agency with no part in `dossier` is the answer for an id that
    does not exist, with the id in place: status, type, title, kind and detail."""
    problem = refused(reply, 404, "unknown-dossier")
    other = unknown.json()
    assert unknown.status_code == 404
    assert {k: v for k, v in problem.items() if k != "instance"} == {
        k: (v.replace("HS-GW-KHONG-CO", dossier) if isinstance(v, str) else v)
        for k, v in other.items() if k != "instance"}
    assert problem["detail"] == f"unknown dossier {dossier}"


async def test_404_every_route_of_a_dossier_without_a_step_on_it(any_api: Api, tokens: Tokens) -> None:
    """The land office's step is not reached yet and the commune has none: the dossier
    does not exist for them, on reads and changes alike (no step list, holder or progress
    leaks), and nothing is sent to the workflow."""
    dossier = await started(any_api, tokens)
    routes = [
        ("GET", "/v1/dossiers/{id}", None),
        ("GET", "/v1/dossiers/{id}/sheet", None),
        ("GET", "/v1/dossiers/{id}/timeline", None),
        ("POST", "/v1/dossiers/{id}/steps/tiep-nhan/complete", {}),
        ("POST", "/v1/dossiers/{id}/steps/tiep-nhan/complete", {"outcome": "rejected", "note": "không"}),
        ("POST", "/v1/dossiers/{id}/steps/khong-co/complete", {}),
        ("POST", "/v1/dossiers/{id}/extend", {"until": _later(), "reason": "chờ", "step_id": "tiep-nhan"}),
        ("POST", "/v1/dossiers/{id}/extend", {"until": _later(), "reason": "chờ"}),
        ("POST", "/v1/dossiers/{id}/resubmit", {}),
    ]
    async with unchanged(any_api, dossier):
        for token in (tokens.land, tokens.commune):
            for method, path, body in routes:
                if method == "GET":
                    reply = await any_api.get(path.format(id=dossier), token)
                    unknown = await any_api.get(path.format(id="HS-GW-KHONG-CO"), token)
                else:
                    reply = await any_api.post(path.format(id=dossier), token, body)
                    unknown = await any_api.post(path.format(id="HS-GW-KHONG-CO"), token, body)
                _as_unknown(reply, dossier, unknown)
    assert (await any_api.get(f"/v1/dossiers/{dossier}", tokens.desk)).status_code == 200


async def test_404_a_finished_dossier_without_a_step_on_it(any_api: Api, tokens: Tokens) -> None:
    """Not "finished" (409): that would tell a stranger it exists."""
    dossier = await started(any_api, tokens)
    done = await any_api.post(f"/v1/dossiers/{dossier}/steps/tiep-nhan/complete", tokens.desk,
                              {"outcome": "rejected", "note": "thiếu giấy tờ"})
    assert done.status_code == 200, done.text
    await any_api.until(dossier, lambda s: s.status == "rejected", "rejected")
    async with unchanged(any_api, dossier):
        body = {"until": _later(), "reason": "chờ", "step_id": "tham-dinh"}
        _as_unknown(await any_api.post(f"/v1/dossiers/{dossier}/extend", tokens.land, body), dossier,
                    await any_api.post("/v1/dossiers/HS-GW-KHONG-CO/extend", tokens.land, body))
        refused(await any_api.post(f"/v1/dossiers/{dossier}/extend", tokens.desk, body), 409, "dossier-finished")


async def test_403_submitting_as_an_agency_that_does_not_receive_dossiers(any_api: Api, tokens: Tokens) -> None:
    dossier_id = "HS-GW-NOT-A-DESK"
    body = {"procedure": "T.GW01", "dossier_id": dossier_id, "data": DATA}
    refused(await any_api.post("/v1/dossiers", tokens.land, body), 403, "not-a-receiving-desk")
    await _never_started(any_api, dossier_id)


async def test_404_unknown_dossier_or_step(any_api: Api, tokens: Tokens) -> None:
    unknown = "HS-GW-KHONG-CO"
    refused(await any_api.post(f"/v1/dossiers/{unknown}/steps/tiep-nhan/complete", tokens.desk, {}),
            404, "unknown-dossier")
    refused(await any_api.post(f"/v1/dossiers/{unknown}/resubmit", tokens.desk, {}), 404, "unknown-dossier")
    refused(await any_api.post(f"/v1/dossiers/{unknown}/extend", tokens.desk, {"until": _later(), "reason": "x"}),
            404, "unknown-dossier")
    refused(await any_api.get(f"/v1/dossiers/{unknown}", tokens.desk), 404, "unknown-dossier")
    refused(await any_api.get(f"/v1/dossiers/{unknown}/sheet", tokens.desk), 404, "unknown-dossier")
    refused(await any_api.get(f"/public/dossiers/{unknown}"), 404, "unknown-dossier")
    await _never_started(any_api, unknown)

    dossier = await started(any_api, tokens)
    async with unchanged(any_api, dossier):
        problem = refused(await any_api.post(f"/v1/dossiers/{dossier}/steps/khong-co/complete", tokens.desk, {}),
                          404, "unknown-step", "UnknownStep")
        assert "tiep-nhan" in problem["detail"]  # it lists the dossier's steps
        refused(await any_api.post(f"/v1/dossiers/{dossier}/extend", tokens.desk,
                                   {"until": _later(), "reason": "chờ", "step_id": "khong-co"}),
                404, "unknown-step", "UnknownStep")


async def test_409_step_not_current(any_api: Api, tokens: Tokens) -> None:
    dossier = await started(any_api, tokens)
    async with unchanged(any_api, dossier):
        problem = refused(await any_api.post(f"/v1/dossiers/{dossier}/steps/tra-ket-qua/complete", tokens.desk, {}),
                          409, "not-current", "NotCurrent")
        assert "not been routed" in problem["detail"]
    dossier = await at_land_office(any_api, tokens)
    async with unchanged(any_api, dossier):  # already completed
        refused(await any_api.post(f"/v1/dossiers/{dossier}/steps/tiep-nhan/complete", tokens.desk, {}),
                409, "not-current", "NotCurrent")


async def test_409_dossier_finished(any_api: Api, tokens: Tokens) -> None:
    dossier = await started(any_api, tokens)
    rejected = await any_api.post(f"/v1/dossiers/{dossier}/steps/tiep-nhan/complete", tokens.desk,
                                  {"outcome": "rejected", "note": "hồ sơ không thuộc thẩm quyền"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected", rejected.text
    await any_api.until(dossier, lambda s: s.status == "rejected", "rejected")
    async with unchanged(any_api, dossier):
        for path, body in ((f"/v1/dossiers/{dossier}/steps/tiep-nhan/complete", {}),
                           (f"/v1/dossiers/{dossier}/steps/tham-dinh/complete", {}),
                           (f"/v1/dossiers/{dossier}/extend", {"until": _later(), "reason": "chờ"})):
            refused(await any_api.post(path, tokens.desk, body), 409, "dossier-finished", "DossierFinished")


async def test_409_awaiting_supplement_and_not_awaiting_supplement(any_api: Api, tokens: Tokens) -> None:
    dossier = await at_land_office(any_api, tokens)
    async with unchanged(any_api, dossier):
        refused(await any_api.post(f"/v1/dossiers/{dossier}/resubmit", tokens.desk, {}),
                409, "not-awaiting-supplement", "NotAwaitingSupplement")
    asked = await any_api.post(f"/v1/dossiers/{dossier}/steps/tham-dinh/complete", tokens.land,
                               {"outcome": "supplement", "note": "thiếu bản sao"})
    assert asked.status_code == 200 and asked.json()["status"] == "awaiting_supplement", asked.text
    async with unchanged(any_api, dossier):
        for body in ({}, {"outcome": "supplement", "note": "lại thiếu"}):
            refused(await any_api.post(f"/v1/dossiers/{dossier}/steps/tham-dinh/complete", tokens.land, body),
                    409, "awaiting-supplement", "AwaitingSupplement")
    back = await any_api.post(f"/v1/dossiers/{dossier}/resubmit", tokens.desk, {"note": "đã bổ sung"})
    assert back.status_code == 200 and back.json()["status"] == "processing", back.text


async def test_409_an_extension_less_than_a_working_day_before_the_due(any_api: Api, tokens: Tokens) -> None:
    dossier = await started(any_api, tokens)  # tiep-nhan: one day, so never a whole day before its due
    async with unchanged(any_api, dossier):
        problem = refused(await any_api.post(f"/v1/dossiers/{dossier}/extend", tokens.desk,
                                             {"until": _later(), "reason": "chờ"}),
                          409, "extension-too-late", "ExtensionTooLate")
        assert "at least one working day before the due, i.e. by" in problem["detail"]


async def test_422_invalid_bodies(any_api: Api, tokens: Tokens) -> None:
    dossier = await started(any_api, tokens)
    complete = f"/v1/dossiers/{dossier}/steps/tiep-nhan/complete"
    extend = f"/v1/dossiers/{dossier}/extend"
    async with unchanged(any_api, dossier):
        problem = refused(await any_api.post(complete, tokens.desk, {"outcome": "maybe"}), 422, "invalid-request")
        assert problem["errors"][0]["location"] == "body.outcome"
        refused(await any_api.post(complete, tokens.desk, {"outcom": "approved"}), 422, "invalid-request")
        refused(await any_api.post(complete, tokens.desk, {"note": "a\x00b"}), 422, "invalid-request")
        refused(await any_api.post(complete, tokens.desk, ["approved"]), 422, "invalid-request")
        not_json = await any_api.http.post(complete, content=b"outcome=approved", headers={
            "Authorization": f"Bearer {tokens.desk}", "Idempotency-Key": "form",
            "Content-Type": "application/x-www-form-urlencoded"})
        refused(not_json, 422, "invalid-request")
        for outcome in ("supplement", "rejected"):
            refused(await any_api.post(complete, tokens.desk, {"outcome": outcome}), 422, "note-required",
                    "NoteRequired")
            refused(await any_api.post(complete, tokens.desk, {"outcome": outcome, "note": "   "}), 422,
                    "note-required", "NoteRequired")
        refused(await any_api.post(extend, tokens.desk, {"until": _later(), "reason": "   "}), 422,
                "reason-required", "ReasonRequired")
        refused(await any_api.post(extend, tokens.desk, {"until": _later(), "reason": ""}), 422, "invalid-request")
        past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        refused(await any_api.post(extend, tokens.desk, {"until": past, "reason": "chờ"}), 422, "bad-extension",
                "BadExtension")
        refused(await any_api.post(extend, tokens.desk, {"until": "2030-01-01T10:00:00", "reason": "chờ"}),
                422, "invalid-request")  # no UTC offset


async def test_422_refused_submissions_start_nothing(any_api: Api, tokens: Tokens) -> None:
    cases = [
        ({"procedure": "9.999999", "data": DATA}, "submission-refused", "not deployed"),
        ({"procedure": "T.GW01", "data": {"commune": "xa-khong-co"}}, "submission-refused", "not a registered"),
        ({"procedure": "T.GW01", "data": {}}, "submission-refused", "needs field 'commune'"),
        ({"procedure": "T.GW01@7", "data": DATA}, "submission-refused", "no deployed version 7"),
        ({"procedure": "procedures.yaml", "data": DATA}, "submission-refused", "not a file"),
        ({"procedure": "../etc/x.yaml", "data": DATA}, "invalid-request", None),
        ({"procedure": "T.GW01", "data": DATA, "channel": "fax"}, "invalid-request", None),
        ({"procedure": "T.GW01", "data": DATA, "received_at": "2999-01-01T00:00:00+07:00"}, "submission-refused",
         "in the future"),
    ]
    for n, (body, slug, words) in enumerate(cases):
        dossier_id = f"HS-GW-REFUSED-{n}"
        problem = refused(await any_api.post("/v1/dossiers", tokens.desk, body | {"dossier_id": dossier_id}),
                          422, slug)
        if words:
            assert words in problem["detail"], problem
        await _never_started(any_api, dossier_id)
    refused(await any_api.post("/v1/dossiers", tokens.desk, {"procedure": "T.GW01", "dossier_id": "HS/1",
                                                              "data": DATA}), 422, "invalid-request")


async def test_409_a_dossier_id_is_never_reused(any_api: Api, tokens: Tokens) -> None:
    dossier = await started(any_api, tokens)
    async with unchanged(any_api, dossier):
        problem = refused(await any_api.post("/v1/dossiers", tokens.desk,
                                             {"procedure": "T.GW01", "dossier_id": dossier, "data": DATA}),
                          409, "dossier-exists")
        assert dossier in problem["detail"]


async def test_400_a_post_without_an_idempotency_key(any_api: Api, tokens: Tokens) -> None:
    dossier = await started(any_api, tokens)
    async with unchanged(any_api, dossier):
        refused(await any_api.post(f"/v1/dossiers/{dossier}/steps/tiep-nhan/complete", tokens.desk, {}, key=None),
                400, "idempotency-key-missing")
        refused(await any_api.post(f"/v1/dossiers/{dossier}/steps/tiep-nhan/complete", tokens.desk, {},
                                   key="x" * 300), 422, "invalid-request")


async def test_an_extension_days_before_the_due_is_accepted_once(any_api: Api, tokens: Tokens) -> None:
    dossier = await at_land_office(any_api, tokens)  # tham-dinh: 5 days left
    until = _later(days=6)
    reply = await any_api.post(f"/v1/dossiers/{dossier}/extend", tokens.land, {"until": until, "reason": "chờ"})
    assert reply.status_code == 200, reply.text
    step = next(s for s in reply.json()["steps"] if s["id"] == "tham-dinh")
    assert step["extensions"] == 1 and datetime.fromisoformat(step["due_at"]) == datetime.fromisoformat(until)
    assert reply.json()["extensions"] == 1
    async with unchanged(any_api, dossier):  # one new appointment per dossier (max_extensions, default 1)
        refused(await any_api.post(f"/v1/dossiers/{dossier}/extend", tokens.land,
                                   {"until": _later(days=7), "reason": "lần hai"}),
                409, "extension-limit", "ExtensionLimit")


def _later(days: int = 5) -> str:
    # Within the test procedure's max_extension (its 10-day deadline, continuous calendar).
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).isoformat()


async def _never_started(api: Api, dossier_id: str) -> None:
    with pytest.raises(RPCError) as err:
        await api.temporal.get_workflow_handle(dossier_id).describe()
    assert err.value.status == RPCStatusCode.NOT_FOUND
