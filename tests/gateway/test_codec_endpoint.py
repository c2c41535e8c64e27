"""The gateway's /codec endpoint (gateway/routes_codec.py), as the Temporal UI and
`temporal --codec-endpoint` call it: a real dossier's encrypted history, fetched from
the (time-skipping) server, decodes for an operator and for nobody else — not without
credentials, not with an agency's token, not from a browser on another origin."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from gateway.app import create_app
from gateway.context import GatewayContext
from services import tokens
from services.codec import CodecAccess, new_operator_token, parse_operators
from store.db import make_engine, make_session_factory
from store.migrate import upgrade
from tests.conftest import DEFINITIONS, deploy_shipped
from tests.workflows.harness import assigned, running_worker, start_dossier, until
from tests.workflows.test_encryption import APPLICANT, CITIZEN_ID, NAME, payloads_of

UI = "http://localhost:8233"
TOKEN, ENTRY = new_operator_token("operator.hoa")


@pytest.fixture
def env(time_skipping_env):
    return time_skipping_env


@pytest.fixture
async def gateway(env, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, GatewayContext]]:
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    upgrade(url)
    sessions = make_session_factory(make_engine(url))
    deploy_shipped(sessions)
    access = CodecAccess(parse_operators(ENTRY), frozenset({UI}))
    context = GatewayContext(env.client, sessions, "unused", DEFINITIONS, access)
    transport = httpx.ASGITransport(app=create_app(context))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield http, context
    context.close()


async def encrypted_history_payloads(env) -> dict:
    async with running_worker(env.client) as tq:
        handle = await start_dossier(env.client, tq, data=APPLICANT)
        await until(handle, assigned("tiep-nhan"), "routed")
        history = await handle.fetch_history()
    return json.loads(json_format.MessageToJson(Payloads(payloads=payloads_of(history)[:3])))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(name: str, token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{token}".encode()).decode()}


async def test_an_operator_decodes_a_dossiers_history_and_encodes_back(env, gateway) -> None:
    http, _ = gateway
    body = await encrypted_history_payloads(env)
    assert NAME not in json.dumps(body, ensure_ascii=False)

    for credentials in (bearer(TOKEN), basic("operator.hoa", TOKEN)):  # the CLI's --codec-auth; a browser
        decoded = await http.post("/codec/decode", json=body, headers={**credentials, "X-Namespace": "default"})
        assert decoded.status_code == 200, decoded.text
        payloads = json_format.ParseDict(decoded.json(), Payloads()).payloads
        input_json = payloads[0].data.decode()
        assert NAME in input_json and CITIZEN_ID in input_json
        assert payloads[0].metadata["encoding"] == b"json/plain"

    encoded = await http.post("/codec/encode", json=decoded.json(), headers=bearer(TOKEN))
    assert encoded.status_code == 200
    again = json_format.ParseDict(encoded.json(), Payloads()).payloads
    assert {p.metadata["encoding"] for p in again} == {b"binary/encrypted"} and NAME not in encoded.text
    back = await http.post("/codec/decode", json=encoded.json(), headers=bearer(TOKEN))
    assert back.json() == decoded.json()


async def test_nobody_else_decodes(env, gateway) -> None:
    http, context = gateway
    body = await encrypted_history_payloads(env)
    with context.sessions.begin() as session:
        agency_token = tokens.issue(session, "vpdk-tinh", "tests", datetime.now(UTC)).token
    refusals = {
        "no credentials": {},
        "an agency's token": bearer(agency_token),
        "an agency's token as Basic": basic("vpdk-tinh", agency_token),
        "another operator's name": basic("someone", TOKEN),
        "a guess": bearer("not-a-token"),
    }
    for action in ("decode", "encode"):  # two Authorization headers: the request guard's 400, before any check
        twice = await http.post(f"/codec/{action}", json=body,
                                headers=[("Authorization", f"Bearer {TOKEN}"), ("authorization", f"Bearer {TOKEN}")])
        assert twice.status_code == 400 and twice.json()["type"] == "/problems/duplicate-header", twice.text
    for why, headers in refusals.items():
        for action in ("decode", "encode"):
            answer = await http.post(f"/codec/{action}", json=body, headers=headers)
            assert answer.status_code == 401, (why, action, answer.text)
            assert answer.headers["www-authenticate"].startswith("Basic realm=")
            assert answer.headers["content-type"] == "application/problem+json"
            assert NAME not in answer.text and CITIZEN_ID not in answer.text
    assert (await http.get("/codec")).status_code == 401
    assert "operator.hoa" in (await http.get("/codec", headers=basic("operator.hoa", TOKEN))).text


async def test_browsers_only_from_the_configured_ui_origin(env, gateway) -> None:
    http, _ = gateway
    body = await encrypted_history_payloads(env)
    preflight = await http.options("/codec/decode", headers={
        "Origin": UI, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == UI
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert "x-namespace" in preflight.headers["access-control-allow-headers"]

    from_ui = await http.post("/codec/decode", json=body, headers={**bearer(TOKEN), "Origin": UI})
    assert from_ui.status_code == 200 and from_ui.headers["access-control-allow-origin"] == UI

    elsewhere = "https://evil.example"
    other_preflight = await http.options("/codec/decode", headers={"Origin": elsewhere,
                                                                   "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in other_preflight.headers
    from_elsewhere = await http.post("/codec/decode", json=body, headers={**bearer(TOKEN), "Origin": elsewhere})
    assert from_elsewhere.status_code == 401 and "access-control-allow-origin" not in from_elsewhere.headers
    assert NAME not in from_elsewhere.text


async def test_without_operators_configured_the_endpoint_decodes_for_nobody(env, gateway) -> None:
    http, context = gateway
    context.codec_access = CodecAccess()
    answer = await http.post("/codec/decode", json=await encrypted_history_payloads(env), headers=bearer(TOKEN))
    assert answer.status_code == 401 and "LIENTHONG_CODEC_OPERATORS" in answer.text


async def test_a_malformed_body_is_refused(gateway) -> None:
    http, _ = gateway
    answer = await http.post("/codec/decode", content=b'{"payloads": 3}', headers=bearer(TOKEN))
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"


def test_the_codec_endpoint_is_not_in_the_agencies_openapi_document(gateway) -> None:
    http, _ = gateway
    assert not any(path.startswith("/codec") for path in http._transport.app.openapi()["paths"])  # type: ignore[attr-defined]
