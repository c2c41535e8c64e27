"""A table of malformed requests to the agency gateway: each is answered with the
expected RFC 9457 problem (type and 4xx status, never 5xx), a `detail` that names
the field, agency or step at fault, and nothing changes — the dossier (state,
Temporal history, projection, audit log), the inboxes, the registry, the tokens.

The one row a refusal may leave is its own stored answer in `gateway_requests`
(a refused POST that reached the idempotency layer is replayed, not re-run, when
retried with the same key); validation and authentication refusals leave none.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.service import RPCError, RPCStatusCode

from config.settings import Settings
from definitions.limits import (
    MAX_BODY_DEPTH,
    MAX_DATA_BYTES,
    MAX_DATA_DEPTH,
    MAX_JSON_INTEGER,
    MAX_JSON_NUMBER_CHARS,
    MAX_NOTE_CHARS,
)
from services import tokens as gateway_tokens
from store.models import Base, GatewayRequestRow
from tests.gateway.stack import COMMUNE, DESK, LAND_OFFICE, TEST_PROCEDURE, Api

DATA = {"commune": "xa-tan-lap"}
PROBLEM = "application/problem+json"
LATER = (datetime.now(UTC) + timedelta(days=20)).replace(microsecond=0).isoformat()
PAST = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat()
NOT_A_TOKEN = "lt_000000000000_" + "x" * 43


@dataclass(frozen=True)
class Tokens:
    desk: str
    land: str
    commune: str
    revoked: str

    def get(self, who: str) -> str | None:
        return {"desk": self.desk, "land": self.land, "commune": self.commune, "revoked": self.revoked,
                "garbage": "not-a-token", "unknown": NOT_A_TOKEN, "none": None}[who]


@dataclass(frozen=True)
class Bad:
    id: str
    method: str
    path: str  # {dossier}: the module's dossier, waiting at tiep-nhan (the desk's step)
    who: str  # whose token: desk | land | commune | revoked | garbage | unknown | none
    status: int
    slug: str
    words: tuple[str, ...] = ()  # in `detail` ({dossier} filled in)
    body: Any = field(default=None)  # JSON (None: {} for POST)
    raw: bytes | None = None  # sent as is instead of `body`
    headers: dict[str, str] = field(default_factory=dict)
    key: str | None = "new"  # Idempotency-Key: new (a fresh UUID), None (not sent) or the value
    location: str | None = None  # for invalid-request: the `errors[].location` at fault


COMPLETE = "/v1/dossiers/{dossier}/steps/tiep-nhan/complete"
EXTEND = "/v1/dossiers/{dossier}/extend"
SUBMIT = "/v1/dossiers"
RECEIVE = "/v1/dossiers/{dossier}/receive"
REFUSE = "/v1/dossiers/{dossier}/refuse"
WITHDRAW = "/v1/dossiers/{dossier}/withdraw"
RETURN = "/v1/dossiers/{dossier}/steps/tiep-nhan/return"


def submission(**fields: Any) -> dict[str, Any]:
    body = {"procedure": TEST_PROCEDURE, "dossier_id": f"HS-GW-BAD-{uuid.uuid4().hex[:8]}", "data": DATA}
    return {k: v for k, v in (body | fields).items() if v is not ...}


def nested(levels: int) -> Any:
    """`levels` objects inside one another."""
    value: Any = "day"
    for _ in range(levels):
        value = {"cap": value}
    return value


def raw_submission(data: str) -> bytes:
    """A submission whose data is written as is (NaN and Infinity: httpx refuses to encode them)."""
    return (f'{{"procedure": "{TEST_PROCEDURE}", "dossier_id": "HS-GW-BAD-{uuid.uuid4().hex[:8]}", '
            f'"data": {data}}}').encode()


JSON = {"Content-Type": "application/json"}
DEFAULT_MAX_BODY = Settings.model_fields["gateway_max_body_bytes"].default  # the stack runs with the defaults
BIG_DATA = DATA | {"ghi_chu": "x" * MAX_DATA_BYTES}


CASES = [
    # ---- the body is not what the schema says
    Bad("body-not-json", "POST", COMPLETE, "desk", 422, "invalid-request",
        ("body: the body is not valid JSON at character 22",), raw=b'{"outcome": "approved"',
        headers={"Content-Type": "application/json"}, location="body"),
    Bad("body-is-a-list", "POST", COMPLETE, "desk", 422, "invalid-request", ("body: the body must be a JSON object",), body=["approved"],
        location="body"),
    Bad("body-form-encoded", "POST", COMPLETE, "desk", 422, "invalid-request", ("the body must be JSON (Content-Type: application/json)", "body: the body must be a JSON object"),
        raw=b"outcome=approved", headers={"Content-Type": "application/x-www-form-urlencoded"}),
    Bad("outcome-wrong-type", "POST", COMPLETE, "desk", 422, "invalid-request", ("body.outcome",), body={"outcome": 1},
        location="body.outcome"),
    Bad("outcome-unknown", "POST", COMPLETE, "desk", 422, "invalid-request",
        ("body.outcome", "'approved', 'supplement', 'obligation' or 'rejected'"), body={"outcome": "maybe"},
        location="body.outcome"),
    Bad("field-unknown", "POST", COMPLETE, "desk", 422, "invalid-request", ("body.outcom", "Extra inputs"),
        body={"outcom": "approved"}, location="body.outcom"),
    Bad("note-wrong-type", "POST", COMPLETE, "desk", 422, "invalid-request", ("body.note",),
        body={"outcome": "rejected", "note": ["a", "b"]}, location="body.note"),
    Bad("note-too-long", "POST", COMPLETE, "desk", 422, "invalid-request", ("body.note", "at most 2000 characters"),
        body={"outcome": "rejected", "note": "x" * 2001}, location="body.note"),
    Bad("note-with-nul", "POST", COMPLETE, "desk", 422, "invalid-request", ("body.note: must not contain NUL characters",),
        body={"outcome": "rejected", "note": "a\x00b"}, location="body.note"),
    Bad("note-missing-for-rejection", "POST", COMPLETE, "desk", 422, "note-required", ("note",),
        body={"outcome": "rejected"}),
    # ---- who and which
    Bad("step-unknown", "POST", "/v1/dossiers/{dossier}/steps/khong-co/complete", "desk", 404, "unknown-step",
        ("khong-co", "tiep-nhan")),
    Bad("step-id-too-long", "POST", "/v1/dossiers/{dossier}/steps/" + "s" * 250 + "/complete", "desk", 404,
        "unknown-step", ("'sssss", "1 to 200 characters", "has 250")),
    Bad("dossier-unknown", "POST", "/v1/dossiers/HS-GW-KHONG-CO/steps/tiep-nhan/complete", "desk", 404,
        "unknown-dossier", ("HS-GW-KHONG-CO",)),
    Bad("dossier-id-too-long", "POST", "/v1/dossiers/" + "D" * 250 + "/steps/tiep-nhan/complete", "desk", 404,
        "unknown-dossier", ("'DDDDD", "1 to 200 characters", "has 250")),
    # An agency with no step on the dossier: the answer for an id that does not exist.
    Bad("not-involved-complete", "POST", COMPLETE, "land", 404, "unknown-dossier", ("unknown dossier {dossier}",)),
    Bad("not-involved-resubmit", "POST", "/v1/dossiers/{dossier}/resubmit", "land", 404, "unknown-dossier",
        ("unknown dossier {dossier}",)),
    Bad("not-involved-read", "GET", "/v1/dossiers/{dossier}", "commune", 404, "unknown-dossier",
        ("unknown dossier {dossier}",)),
    # ---- tokens
    Bad("token-missing", "POST", COMPLETE, "none", 401, "unauthorized", ("Authorization: Bearer",)),
    Bad("token-malformed", "POST", COMPLETE, "garbage", 401, "unauthorized",
        ("the token is malformed", "lienthong agencies issue-token")),
    Bad("token-unknown", "GET", "/v1/inbox", "unknown", 401, "unauthorized", ("the token is unknown",)),
    Bad("token-revoked", "POST", COMPLETE, "revoked", 401, "unauthorized", ("was revoked at", "new one")),
    # ---- Idempotency-Key
    Bad("idempotency-key-missing", "POST", COMPLETE, "desk", 400, "idempotency-key-missing", ("Idempotency-Key",),
        key=None),
    Bad("idempotency-key-too-long", "POST", COMPLETE, "desk", 422, "invalid-request",
        ("header.Idempotency-Key: expected 1 to 255 visible ASCII characters",),
        key="k" * 300, location="header.Idempotency-Key"),
    Bad("idempotency-key-with-space", "POST", COMPLETE, "desk", 422, "invalid-request",
        ("header.Idempotency-Key: expected 1 to 255 visible ASCII characters without spaces",),
        key="mot hai", location="header.Idempotency-Key"),
    # ---- extend
    Bad("extend-until-not-a-date", "POST", EXTEND, "desk", 422, "invalid-request", ("body.until", "expected an ISO 8601 date-time with a UTC offset"),
        body={"until": "thứ hai tuần sau", "reason": "chờ"}, location="body.until"),
    Bad("extend-until-without-offset", "POST", EXTEND, "desk", 422, "invalid-request", ("body.until", "timezone"),
        body={"until": "2030-01-01T10:00:00", "reason": "chờ"}, location="body.until"),
    Bad("extend-until-in-the-past", "POST", EXTEND, "desk", 422, "bad-extension", ("is in the past",),
        body={"until": PAST, "reason": "chờ"}),
    Bad("extend-reason-missing", "POST", EXTEND, "desk", 422, "invalid-request", ("body.reason", "Field required"),
        body={"until": LATER}, location="body.reason"),
    Bad("extend-reason-blank", "POST", EXTEND, "desk", 422, "reason-required", ("reason",),
        body={"until": LATER, "reason": "   "}),
    Bad("extend-reason-too-long", "POST", EXTEND, "desk", 422, "invalid-request", ("body.reason", "2000"),
        body={"until": LATER, "reason": "r" * 2001}, location="body.reason"),
    Bad("extend-step-unknown", "POST", EXTEND, "desk", 404, "unknown-step", ("khong-co",),
        body={"until": LATER, "reason": "chờ", "step_id": "khong-co"}),
    Bad("extend-not-involved", "POST", EXTEND, "land", 404, "unknown-dossier", ("unknown dossier {dossier}",),
        body={"until": LATER, "reason": "chờ", "step_id": "tiep-nhan"}),
    # ---- the life cycle (issue 14): the dossier is received and at tiep-nhan
    Bad("obligation-without-note", "POST", COMPLETE, "desk", 422, "note-required", ("the amount and what it is for",),
        body={"outcome": "obligation"}),
    Bad("receive-already-received", "POST", RECEIVE, "desk", 409, "already-received",
        ("dossier {dossier} was already received by bpmc-xa-xa-tan-lap",)),
    Bad("receive-not-a-desk", "POST", RECEIVE, "land", 403, "not-a-receiving-desk", (LAND_OFFICE,)),
    Bad("receive-note-wrong-type", "POST", RECEIVE, "desk", 422, "invalid-request", ("body.note",), body={"note": 1},
        location="body.note"),
    Bad("refuse-note-missing", "POST", REFUSE, "desk", 422, "invalid-request", ("body.note", "Field required"),
        location="body.note"),
    Bad("refuse-already-received", "POST", REFUSE, "desk", 409, "already-received", ("only a dossier waiting",),
        body={"note": "không đủ"}),
    Bad("withdraw-note-missing", "POST", WITHDRAW, "desk", 422, "invalid-request", ("body.note", "Field required"),
        location="body.note"),
    Bad("withdraw-note-blank", "POST", WITHDRAW, "desk", 422, "note-required", ("a withdrawal needs a note",),
        body={"note": "   "}),
    Bad("withdraw-not-involved", "POST", WITHDRAW, "land", 404, "unknown-dossier", ("unknown dossier {dossier}",),
        body={"note": "rút"}),
    Bad("return-to-missing", "POST", RETURN, "desk", 422, "invalid-request", ("body.to", "Field required"),
        body={"note": "sai"}, location="body.to"),
    Bad("return-not-in-returns-to", "POST", RETURN, "desk", 422, "bad-return", ("may return dossier {dossier} to: none",),
        body={"to": "tham-dinh", "note": "sai"}),
    Bad("return-note-blank", "POST", RETURN, "desk", 422, "note-required", ("a return needs a note",),
        body={"to": "tham-dinh", "note": " "}),
    Bad("return-step-unknown", "POST", "/v1/dossiers/{dossier}/steps/khong-co/return", "desk", 404, "unknown-step",
        ("khong-co",), body={"to": "tiep-nhan", "note": "sai"}),
    Bad("return-not-involved", "POST", RETURN, "land", 404, "unknown-dossier", ("unknown dossier {dossier}",),
        body={"to": "tiep-nhan", "note": "sai"}),
    Bad("submit-result-desk-not-a-desk", "POST", SUBMIT, "desk", 422, "submission-refused",
        (f"--result-desk '{LAND_OFFICE}' does not receive dossiers",), body=submission(result_desk=LAND_OFFICE)),
    Bad("submit-online-outside-scope", "POST", SUBMIT, "desk", 422, "submission-refused",
        ("does not receive procedure 1.012756@", "commune 'xa-an-phu'"),
        body=submission(procedure="1.012756", data={"commune": "xa-an-phu"}, channel="online")),
    Bad("submit-await-receipt-not-a-boolean", "POST", SUBMIT, "desk", 422, "invalid-request", ("body.await_receipt",),
        body=submission(await_receipt="có"), location="body.await_receipt"),
    # ---- submission
    Bad("submit-another-communes-dossier", "POST", SUBMIT, "desk", 422, "submission-refused",
        ("'bpmc-xa-xa-tan-lap' does not receive procedure 1.012756@", "commune 'xa-an-phu'",
         "commune(s) xa-tan-lap"), body=submission(procedure="1.012756", data={"commune": "xa-an-phu"})),
    Bad("submit-province-procedure-at-a-commune-desk", "POST", SUBMIT, "desk", 422, "submission-refused",
        ("does not receive procedure 2.001610@", "(level tinh)", "province-wide list"),
        body=submission(procedure="2.001610")),
    Bad("submit-unknown-procedure", "POST", SUBMIT, "desk", 422, "submission-refused",
        ("procedure 9.999999 is not deployed",), body=submission(procedure="9.999999")),
    Bad("submit-unknown-commune", "POST", SUBMIT, "desk", 422, "submission-refused",
        ("'bpmc-xa-xa-khong-co'", "not a registered agency", "known commune values"),
        body=submission(data={"commune": "xa-khong-co"})),
    Bad("submit-missing-required-data", "POST", SUBMIT, "desk", 422, "submission-refused",
        ("step 'tiep-nhan'", "needs field 'commune' in the dossier's data"), body=submission(data={})),
    Bad("submit-data-not-an-object", "POST", SUBMIT, "desk", 422, "invalid-request", ("body.data",),
        body=submission(data=["xa-tan-lap"]), location="body.data"),
    Bad("submit-missing-dossier-id", "POST", SUBMIT, "desk", 422, "invalid-request", ("body.dossier_id", "required"),
        body=submission(dossier_id=...), location="body.dossier_id"),
    Bad("submit-dossier-id-with-slash", "POST", SUBMIT, "desk", 422, "invalid-request", ("body.dossier_id: expected letters, digits",),
        body=submission(dossier_id="HS/2026/1"), location="body.dossier_id"),
    Bad("submit-procedure-too-long", "POST", SUBMIT, "desk", 422, "invalid-request", ("body.procedure", "100"),
        body=submission(procedure="9" * 101), location="body.procedure"),
    Bad("submit-unknown-channel", "POST", SUBMIT, "desk", 422, "invalid-request", ("body.channel",),
        body=submission(channel="fax"), location="body.channel"),
    Bad("submit-received-at-not-a-date", "POST", SUBMIT, "desk", 422, "invalid-request", ("body.received_at", "with a UTC offset"),
        body=submission(received_at="hôm qua"), location="body.received_at"),
    Bad("submit-not-a-desk", "POST", SUBMIT, "land", 403, "not-a-receiving-desk", (LAND_OFFICE,), body=submission()),
    Bad("submit-data-too-big", "POST", SUBMIT, "desk", 422, "submission-refused",
        (f"dossier data is {len(json.dumps(BIG_DATA, separators=(',', ':')).encode())} bytes as JSON",
         f"at most {MAX_DATA_BYTES} bytes (MAX_DATA_BYTES)"), body=submission(data=BIG_DATA)),
    Bad("submit-data-too-deep", "POST", SUBMIT, "desk", 422, "submission-refused",
        (f"dossier data nests {MAX_DATA_DEPTH + 1} levels of objects/arrays deep",
         f"(field 'ho_so{'.cap' * (MAX_DATA_DEPTH - 1)}' is level {MAX_DATA_DEPTH + 1})",
         f"at most {MAX_DATA_DEPTH} (MAX_DATA_DEPTH)"),
        body=submission(data=DATA | {"ho_so": nested(MAX_DATA_DEPTH)})),
    Bad("submit-data-nan", "POST", SUBMIT, "desk", 422, "submission-refused",
        ("dossier data field 'area_m2' is NaN; expected a finite number (JSON has no NaN or Infinity)",),
        raw=raw_submission('{"commune": "xa-tan-lap", "area_m2": NaN}'), headers=JSON),
    Bad("submit-data-infinity", "POST", SUBMIT, "desk", 422, "submission-refused",
        ("dossier data field 'thua.0.dien_tich' is Infinity",),
        raw=raw_submission('{"commune": "xa-tan-lap", "thua": [{"dien_tich": Infinity}]}'), headers=JSON),
    # ---- JSON no route should see (gateway/guard.py, before the body is parsed into a model)
    Bad("json-lone-surrogate", "POST", SUBMIT, "desk", 422, "invalid-request",
        ("body.data.ho_ten: holds a lone surrogate",), raw=raw_submission('{"commune": "xa-tan-lap", '
                                                                          '"ho_ten": "Nguy\\ud800n"}'),
        headers=JSON, location="body.data.ho_ten"),
    Bad("json-lone-surrogate-in-a-key", "POST", SUBMIT, "desk", 422, "invalid-request",
        ("body.data: the key '\\udc00x' holds a lone surrogate",),
        raw=raw_submission('{"commune": "xa-tan-lap", "\\udc00x": 1}'), headers=JSON, location="body.data"),
    Bad("json-lone-surrogate-in-a-note", "POST", COMPLETE, "desk", 422, "invalid-request",
        ("body.note: holds a lone surrogate",), raw=b'{"outcome": "rejected", "note": "\\udfff"}', headers=JSON,
        location="body.note"),
    Bad("json-400-digit-number", "POST", SUBMIT, "desk", 422, "invalid-request",
        ("body.data.dien_tich: the number 99999999999999999999…(400 characters)", f"±{MAX_JSON_INTEGER}",
         "(MAX_JSON_INTEGER"), raw=raw_submission('{"commune": "xa-tan-lap", "dien_tich": ' + "9" * 400 + "}"),
        headers=JSON, location="body.data.dien_tich"),
    Bad("json-integer-past-i-json", "POST", SUBMIT, "desk", 422, "invalid-request",
        (f"the number {MAX_JSON_INTEGER + 1} is beyond",),
        raw=raw_submission('{"commune": "xa-tan-lap", "so": ' + str(MAX_JSON_INTEGER + 1) + "}"), headers=JSON,
        location="body.data.so"),
    Bad("json-long-fraction", "POST", SUBMIT, "desk", 422, "invalid-request",
        (f"at most {MAX_JSON_NUMBER_CHARS} characters (MAX_JSON_NUMBER_CHARS)",),
        raw=raw_submission('{"commune": "xa-tan-lap", "ty_le": 0.' + "1" * 40 + "}"), headers=JSON,
        location="body.data.ty_le"),
    Bad("json-260-deep", "POST", SUBMIT, "desk", 422, "invalid-request",
        (f"nests more than {MAX_BODY_DEPTH} levels of objects/arrays (MAX_BODY_DEPTH)",),
        body=submission(data=DATA | {"ho_so": nested(260)})),
    Bad("json-100000-deep", "POST", COMPLETE, "desk", 422, "invalid-request",
        (f"the body nests objects/arrays hundreds of levels deep; at most {MAX_BODY_DEPTH} (MAX_BODY_DEPTH)",),
        raw=b'{"outcome": "approved", "note": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", headers=JSON,
        location="body"),
    Bad("json-not-utf8", "POST", SUBMIT, "desk", 422, "invalid-request",
        ("body: the body is not UTF-8 (byte 0xff at offset",),
        raw=raw_submission('{"commune": "xa-tan-lap", "ho_ten": "Q"}').replace(b"Q", b"\xff"), headers=JSON,
        location="body"),
    Bad("json-latin1", "POST", COMPLETE, "desk", 422, "invalid-request", ("byte 0xea",),
        raw='{"outcome": "rejected", "note": "thiếu giấy tờ"}'.encode().replace("ế".encode(), b"\xea"),
        headers=JSON, location="body"),
    # ---- size
    Bad("body-too-large", "POST", SUBMIT, "desk", 413, "payload-too-large",
        (f"the body is {DEFAULT_MAX_BODY + 1} bytes (Content-Length); at most {DEFAULT_MAX_BODY} bytes",),
        raw=b" " * (DEFAULT_MAX_BODY + 1), headers=JSON),
    Bad("body-too-large-unauthenticated", "POST", SUBMIT, "none", 413, "payload-too-large", ("at most",),
        raw=b" " * (DEFAULT_MAX_BODY + 1), headers=JSON),
    Bad("resubmit-note-too-long", "POST", "/v1/dossiers/{dossier}/resubmit", "desk", 422, "invalid-request",
        ("body.note", f"at most {MAX_NOTE_CHARS} characters"), body={"note": "n" * (MAX_NOTE_CHARS + 1)},
        location="body.note"),
    # ---- reading
    Bad("inbox-limit-zero", "GET", "/v1/inbox?limit=0", "land", 422, "invalid-request", ("query.limit",),
        location="query.limit"),
    Bad("inbox-limit-not-a-number", "GET", "/v1/inbox?limit=nam", "land", 422, "invalid-request", ("query.limit",),
        location="query.limit"),
    Bad("inbox-offset-negative", "GET", "/v1/inbox?offset=-1", "land", 422, "invalid-request", ("query.offset",),
        location="query.offset"),
]


@pytest.fixture(scope="module")
def tokens(api: Api) -> Tokens:
    stack = api.stack
    revoked = stack.token(DESK)
    with stack.sessions().begin() as session:
        gateway_tokens.revoke(session, gateway_tokens.token_id_of(revoked), datetime.now(UTC))
    return Tokens(desk=stack.token(DESK), land=stack.token(LAND_OFFICE), commune=stack.token(COMMUNE),
                  revoked=revoked)


@pytest.fixture(scope="module")
async def dossier(api: Api, tokens: Tokens) -> str:
    """One dossier, waiting at its first step (tiep-nhan, the desk's) for every case."""
    dossier_id = await api.submit(tokens.desk, DATA)
    await api.assigned(dossier_id, "tiep-nhan")
    return dossier_id


def counts(api: Api) -> dict[str, int]:
    """Rows in every table but gateway_requests (checked on its own)."""
    with api.stack.sessions()() as session:
        return {t.name: session.scalar(select(func.count()).select_from(t)) or 0
                for t in Base.metadata.sorted_tables if t.name != "gateway_requests"}


def stored_requests(api: Api) -> list[tuple[str, str, int | None]]:
    with api.stack.sessions()() as session:
        return [(row.agency, row.key, row.status_code) for row in session.scalars(select(GatewayRequestRow))]


async def send(api: Api, case: Bad, dossier: str, token: str | None) -> httpx.Response:
    headers = dict(case.headers)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    key = uuid.uuid4().hex if case.key == "new" else case.key
    if key is not None and case.method == "POST":
        headers["Idempotency-Key"] = key
    path = case.path.replace("{dossier}", dossier)
    if case.method == "GET":
        return await api.http.get(path, headers=headers)
    if case.raw is not None:
        return await api.http.post(path, content=case.raw, headers=headers)
    return await api.http.post(path, json={} if case.body is None else case.body, headers=headers)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_refused_with_a_problem_naming_the_fault_and_nothing_changed(api: Api, tokens: Tokens, dossier: str,
                                                                          case: Bad) -> None:
    before = await api.settled(dossier)
    tables, requests = counts(api), stored_requests(api)
    reply = await send(api, case, dossier, tokens.get(case.who))

    assert reply.status_code == case.status, reply.text
    assert 400 <= reply.status_code < 500
    assert reply.headers["content-type"] == PROBLEM
    problem = reply.json()
    assert problem["type"] == f"/problems/{case.slug}", problem
    assert problem["status"] == case.status and problem["title"]
    assert problem["instance"] == reply.request.url.path
    detail = problem.get("detail") or ""
    for word in case.words:
        assert word.replace("{dossier}", dossier) in detail, f"{word!r} not in detail {detail!r}"
    if case.location is not None:
        assert case.location in [e["location"] for e in problem["errors"]], problem
    if case.status == 401:
        assert reply.headers["www-authenticate"].startswith("Bearer")

    assert await api.settled(dossier) == before  # state, history length, projection seq, audit-log rows
    assert counts(api) == tables  # inboxes, events, dossiers, registry, tokens
    added = [row for row in stored_requests(api) if row not in requests]
    assert all(status == case.status for _, _, status in added), added  # at most its own stored refusal
    if case.slug in ("invalid-request", "unauthorized", "idempotency-key-missing") or case.method == "GET":
        assert added == []
    if case.path == SUBMIT and isinstance(case.body, dict) and "dossier_id" in case.body:
        with pytest.raises(RPCError) as err:
            await api.temporal.get_workflow_handle(case.body["dossier_id"]).describe()
        assert err.value.status == RPCStatusCode.NOT_FOUND


async def test_the_same_key_with_another_body_is_refused_and_changes_nothing(api: Api, tokens: Tokens,
                                                                           dossier: str) -> None:
    key = f"bad-inputs-{uuid.uuid4().hex}"
    path = f"/v1/dossiers/{dossier}/steps/khong-co/complete"
    first = await api.post(path, tokens.desk, {}, key=key)
    assert first.status_code == 404
    before, tables = await api.settled(dossier), counts(api)
    reused = await api.post(path, tokens.desk, {"outcome": "rejected", "note": "khác"}, key=key)
    assert reused.status_code == 422 and reused.json()["type"] == "/problems/idempotency-key-reused"
    assert key in reused.json()["detail"] and path in reused.json()["detail"]
    assert await api.settled(dossier) == before and counts(api) == tables


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 20
    assert len({c.id for c in CASES}) == len(CASES)
