"""The published OpenAPI document, and schemathesis against it from a second process:
generated requests (with a valid desk token, and without) never get a 5xx, and the
answers match the documented status codes, media types, headers and schemas."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.gateway.stack import DESK, REPO, Stack

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
EXAMPLES_PER_OPERATION = 30
# Every built-in check but positive_data_acceptance, which wants every schema-valid
# request to succeed: a valid request for a dossier that is not there (404), a step
# that is not current (409) or a note the workflow requires (422) is rightly refused.
EXCLUDED_CHECKS = "positive_data_acceptance"


def test_the_document_is_published_with_problems_and_security(stack: Stack) -> None:
    document = httpx.get(f"{stack.url}/openapi.json").json()
    assert document["openapi"].startswith("3.") and document["info"]["title"] == "lienthong agency gateway"
    assert {"/v1/inbox", "/v1/dossiers", "/v1/dossiers/{dossier_id}", "/v1/dossiers/{dossier_id}/sheet",
            "/v1/dossiers/{dossier_id}/steps/{step_id}/complete", "/v1/dossiers/{dossier_id}/resubmit",
            "/v1/dossiers/{dossier_id}/extend", "/v1/dossiers/{dossier_id}/documents/{form}",
            "/v1/dossiers/{dossier_id}/receive", "/v1/dossiers/{dossier_id}/refuse",
            "/v1/dossiers/{dossier_id}/withdraw", "/v1/dossiers/{dossier_id}/steps/{step_id}/return",
            "/public/dossiers/{dossier_id}"} <= set(document["paths"])
    forms = document["paths"]["/v1/dossiers/{dossier_id}/documents/{form}"]["get"]["responses"]
    assert set(forms["200"]["content"]) == {"text/html", "application/pdf"} and {"404", "406", "409"} <= set(forms)
    scheme = document["components"]["securitySchemes"]["agencyToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], (method, path, status)
            if method == "post":
                assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" and p["required"]
                           for p in operation["parameters"]), path
            if path.startswith("/v1/"):
                assert operation["security"] == [{"agencyToken": []}], path
                assert "401" in operation["responses"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert document["components"]["schemas"]["SubmitDossier"]["examples"]
    types = httpx.get(f"{stack.url}/problems").json()
    assert {t["type"] for t in types} >= {"/problems/not-current", "/problems/wrong-agency",
                                          "/problems/unauthorized", "/problems/dossier-finished",
                                          "/problems/already-received", "/problems/not-received",
                                          "/problems/decision-made", "/problems/bad-return",
                                          "/problems/return-limit", "/problems/awaiting-obligation",
                                          "/problems/outside-receiving-scope"}
    assert httpx.get(f"{stack.url}/problems/not-current").json()["status"] == 409
    assert httpx.get(f"{stack.url}/problems/decision-made").json()["status"] == 409
    # The life cycle's bodies and the obligation outcome are published.
    schemas = document["components"]["schemas"]
    assert "obligation" in schemas["Outcome"]["enum"]
    assert set(schemas["ReturnBody"]["required"]) == {"to", "note"} and schemas["ReasonBody"]["required"] == ["note"]
    assert {"await_receipt", "result_desk"} <= set(schemas["SubmitDossier"]["properties"])
    assert {"received_by", "result_desk", "portal_history"} <= set(schemas["Sheet"]["properties"])


def test_schemathesis_finds_no_server_error(stack: Stack) -> None:
    # The token goes through schemathesis' auth config (not a raw header), so its
    # auth checks can send requests without it and expect 401.
    config = stack.log.parent / "schemathesis.toml"
    config.write_text('[auth.openapi.agencyToken]\nbearer = "${GATEWAY_TOKEN}"\n', encoding="utf-8")
    command = [str(SCHEMATHESIS), "--config-file", str(config), "run", f"{stack.url}/openapi.json",
               "--checks", "all", "--exclude-checks", EXCLUDED_CHECKS, "--max-examples", str(EXAMPLES_PER_OPERATION),
               # One worker: CPython 3.11 before 3.11.8 cannot parse source on two threads at
               # once (hypothesis describes filters that way), which schemathesis reports as an error.
               "--workers", "1", "--request-timeout", "60", "--no-color"]
    env = os.environ | {"SCHEMATHESIS_HOOKS": "tests.gateway.schemathesis_hooks", "PYTHONPATH": str(REPO),
                        "GATEWAY_TOKEN": stack.token(DESK)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=stack.log.parent, env=env,
                            check=False)
    summary = result.stdout[result.stdout.rfind("SUMMARY"):]
    print(summary)  # operations, phases and how many cases ran: in the test output
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-3000:] + stack.output()
    assert "Failures:" not in summary and "Errors:" not in summary
