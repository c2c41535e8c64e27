"""The life cycle of issue 14 through the real CLI, on a real `lienthong dev` stack:
online receipt, refusal at the desk, withdrawal (refused before receipt and after the
decision), a return to an earlier step, a financial obligation paid, and the desks'
receiving scope at submission and at receipt.

The stack's definitions are the shipped ones plus T.LC01 on the `continuous` calendar
(no test depends on the hour it runs): tiep-nhan (the commune's desk) → tham-dinh
(vpdk-tinh) → phe-duyet (Sở NN&MT, may send it back to tham-dinh once) → tra-ket-qua
(returns the result at the desk).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from store.models import DossierEventRow, DossierIdRow
from tests.support.procedures import life_cycle_procedure
from tests.workers.conftest import DevStack, copy_definitions, start_dev_stack
from tests.workers.conftest import StackCli as Cli

DESK = "bpmc-xa-xa-tan-lap"
OTHER_DESK = "bpmc-xa-xa-an-phu"
PROVINCE_DESK = "bpmc-tinh"
LAND_OFFICE = "vpdk-tinh"
DEPARTMENT = "so-nong-nghiep-moi-truong"
DATA = json.dumps({"commune": "xa-tan-lap", "applicant": "Lê Văn D"}, ensure_ascii=False)
PROCEDURE = "T.LC01"
LIFE_CYCLE = life_cycle_procedure(PROCEDURE, LAND_OFFICE, DEPARTMENT)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    folder = tmp_path_factory.mktemp("life-cycle")
    definitions = copy_definitions(folder / "definitions")
    (definitions / "procedures" / "vong-doi.yaml").write_text(LIFE_CYCLE, encoding="utf-8")
    running = start_dev_stack(folder, definitions)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def cli(stack: DevStack) -> Cli:
    return Cli(stack)


def new_id() -> str:
    return f"HS-LC-{uuid.uuid4().hex[:8]}"


def submit(cli: Cli, *options: str, dossier: str | None = None, data: str = DATA) -> tuple[str, str]:
    dossier = dossier or new_id()
    return dossier, cli.ok("dossiers", "submit", "--procedure", PROCEDURE, "--id", dossier, "--data", data,
                           *options)


def step(state: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in state["steps"] if s["id"] == step_id)


def assigned(cli: Cli, dossier: str, step_id: str) -> dict[str, Any]:
    return cli.until(dossier, lambda s: step(s, step_id)["status"] == "assigned", f"{step_id} assigned")


def complete(cli: Cli, dossier: str, step_id: str, agency: str, *options: str) -> str:
    assigned(cli, dossier, step_id)
    return cli.ok("dossiers", "complete", dossier, step_id, "--agency", agency, *options)


def audit_log(stack: DevStack, dossier: str, seq: int) -> list[tuple[str, int | None]]:
    """(kind, portal status) of the dossier's events, once the store holds `seq`."""
    for _ in range(100):
        with stack.sessions()() as session:
            rows = session.execute(select(DossierEventRow.kind, DossierEventRow.portal_status, DossierEventRow.seq)
                                   .where(DossierEventRow.dossier_id == dossier)
                                   .order_by(DossierEventRow.seq)).all()
        if rows and rows[-1].seq >= seq:
            return [(row.kind, row.portal_status) for row in rows]
        time.sleep(0.1)
    pytest.fail(f"the audit log of {dossier} never reached seq {seq}")


def sheet(cli: Cli, dossier: str, seq: int) -> dict[str, Any]:
    """The sheet, from the projection once it holds `seq`."""
    for _ in range(100):
        document: dict[str, Any] = json.loads(cli.ok("dossiers", "sheet", dossier, "--json"))
        if document["source"] == "projection" and _projected(cli, dossier) >= seq:
            return document
        time.sleep(0.1)
    pytest.fail(f"the sheet of {dossier} never reached seq {seq}")


def _projected(cli: Cli, dossier: str) -> int:
    from store import projection

    with cli.stack.sessions()() as session:
        return projection.last_seq(session, dossier) or 0


def refusal(result: Any) -> str:
    """A usage error: exit 2, one line naming the missing argument."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    return str(result.stderr.strip())


def test_an_online_dossier_is_received_by_its_desk_then_withdrawn(stack: DevStack, cli: Cli) -> None:
    dossier, out = submit(cli, "--channel", "online", "--received-by", DESK)
    assert f"waiting:  for {DESK} to receive it (portal status 1)" in out and "due:" not in out
    waiting = cli.until(dossier, lambda s: s["status"] == "submitted", "submitted")
    assert waiting["portal_status"] == 1 and waiting["due_at"] is None and waiting["received_by"] == DESK
    assert all(s["status"] == "pending" for s in waiting["steps"])
    for _ in range(100):  # the desk's inbox lists what waits for it (from the projection, just after)
        page = json.loads(cli.ok("inbox", DESK, "--json"))
        if dossier in [w["dossier_id"] for w in page["awaiting_receipt"]]:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"{dossier} never showed in {DESK}'s awaiting_receipt: {page}")
    assert f"waiting for {DESK} to receive or refuse them" in cli.ok("inbox", DESK)
    assert dossier not in cli.ok("inbox", OTHER_DESK)

    # The desk is checked against the registry before the dossier hears of it (Art. 14 scope);
    # a desk in scope but not the one it is addressed to is refused by the dossier.
    assert cli.refused("dossiers", "receive", dossier, "--agency", OTHER_DESK) == (
        f"dossier {dossier}: desk '{OTHER_DESK}' does not receive procedure {PROCEDURE}@1 for commune "
        "'xa-tan-lap': it receives level(s) xa for commune(s) xa-an-phu and the province-wide list")
    assert "does not receive dossiers" in cli.refused("dossiers", "receive", dossier, "--agency", LAND_OFFICE)
    assert "not received yet" in cli.refused("dossiers", "withdraw", dossier, "--agency", DESK, "--note", "rút")
    assert cli.state(dossier)["status"] == "submitted"

    # A retried receipt (the same --request-id) is applied once.
    key = f"{dossier}-receive"
    for _ in range(2):
        out = cli.ok("dossiers", "receive", dossier, "--agency", DESK, "--note", "đủ thành phần",
                     "--request-id", key)
        assert out.startswith(f"dossier {dossier}: received by {DESK} at ")
    received = assigned(cli, dossier, "tiep-nhan")
    assert received["status"] == "processing" and received["portal_status"] == 4 and received["due_at"]
    assert received["clock_started_at"] == received["received_at"]  # continuous calendar: at once
    assert "already received" in cli.refused("dossiers", "receive", dossier, "--agency", DESK)
    assert "already received" in cli.refused("dossiers", "refuse", dossier, "--agency", DESK, "--note", "x")
    view = cli.ok("dossiers", "show", dossier)
    assert f" by {DESK}" in next(line for line in view.splitlines() if line.startswith("received:"))
    assert f"result desk:  {DESK}" in view

    assert "--note" in refusal(cli("dossiers", "withdraw", dossier, "--agency", DESK))
    assert "neither received" in cli.refused("dossiers", "withdraw", dossier, "--agency", LAND_OFFICE,
                                             "--note", "rút")
    out = cli.ok("dossiers", "withdraw", dossier, "--agency", DESK, "--note", "Đơn xin rút hồ sơ ngày 24/11")
    assert out.startswith(f"dossier {dossier}: withdrawn at the applicant's request (portal status 7, now 8)")
    final = cli.until(dossier, lambda s: s["status"] == "withdrawn", "withdrawn")
    assert final["portal_status"] == 8 and step(final, "tiep-nhan")["status"] == "skipped"
    assert [portal for _, portal in audit_log(stack, dossier, final["last_event_seq"]) if portal] == [1, 2, 4, 7, 8]
    document = sheet(cli, dossier, final["last_event_seq"])
    assert [c["portal_status"] for c in document["portal_history"]] == [1, 2, 4, 7, 8]
    assert document["received_by"] == DESK and document["submitted_at"] is not None
    assert [(h["step_id"], h["status"]) for h in document["handovers"]] == [("tiep-nhan", "withdrawn")]
    assert dossier not in cli.ok("inbox", DESK)


def test_a_desk_refuses_a_dossier_before_receipt(stack: DevStack, cli: Cli) -> None:
    dossier, _ = submit(cli, "--channel", "online", "--received-by", DESK)
    cli.until(dossier, lambda s: s["status"] == "submitted", "submitted")
    assert "--note" in refusal(cli("dossiers", "refuse", dossier, "--agency", DESK))
    assert cli.refused("dossiers", "refuse", dossier, "--agency", DESK, "--note", "  ") == (
        "refused: a refusal needs a note with the reasons (it goes on Mẫu 03)")
    out = cli.ok("dossiers", "refuse", dossier, "--agency", DESK, "--note", "Thủ tục không thuộc thẩm quyền của xã")
    assert out == f"dossier {dossier}: not received (refused by {DESK}, portal status 3); it counts in no figure\n"
    final = cli.until(dossier, lambda s: s["status"] == "not_received", "not received")
    assert final["portal_status"] == 3 and final["verdict"] is None and final["clock_started_at"] is None
    assert "takes no more changes" in cli.refused("dossiers", "receive", dossier, "--agency", DESK)
    assert audit_log(stack, dossier, final["last_event_seq"]) == [("submitted", 1), ("not_received", 3)]


def test_an_obligation_paid_a_return_and_a_withdrawal_refused_after_the_decision(stack: DevStack,
                                                                                 cli: Cli) -> None:
    dossier, out = submit(cli, "--received-by", DESK)  # in person: received at once
    assert "due:" in out
    complete(cli, dossier, "tiep-nhan", DESK)

    # A financial obligation (portal status 6): the clocks stop until it is paid.
    assigned(cli, dossier, "tham-dinh")
    assert "the amount and what it is for" in cli.refused("dossiers", "complete", dossier, "tham-dinh", "--agency",
                                                          LAND_OFFICE, "--outcome", "obligation")
    out = cli.ok("dossiers", "complete", dossier, "tham-dinh", "--agency", LAND_OFFICE, "--outcome", "obligation",
                 "--note", "Lệ phí trước bạ 2.400.000 đồng")
    assert out.startswith(f"dossier {dossier}: financial obligation requested at step tham-dinh; dossier "
                          "awaiting_obligation (portal status 6): every clock stops until it is paid")
    assert "financial obligation" in cli.refused("dossiers", "complete", dossier, "tham-dinh", "--agency",
                                                 LAND_OFFICE)
    assert "awaiting financial obligation" in cli.ok("dossiers", "show", dossier)
    out = cli.ok("dossiers", "pay", dossier, "--agency", DESK, "--note", "Biên lai số 0012")
    assert out.startswith(f"dossier {dossier}: resubmitted (Biên lai số 0012); dossier processing, due ")
    assert "not waiting for the applicant" in cli.refused("dossiers", "resubmit", dossier, "--agency", DESK)
    complete(cli, dossier, "tham-dinh", LAND_OFFICE)

    # A return to an earlier step: only to one of the step's returns_to, by the step's agency.
    assigned(cli, dossier, "phe-duyet")
    assert "may return dossier" in cli.refused("dossiers", "return", dossier, "phe-duyet", "--agency", DEPARTMENT,
                                               "--to", "tiep-nhan", "--note", "sai")
    assert f"belongs to {DEPARTMENT}" in cli.refused("dossiers", "return", dossier, "phe-duyet", "--agency",
                                                     LAND_OFFICE, "--to", "tham-dinh", "--note", "sai")
    assert "--to" in refusal(cli("dossiers", "return", dossier, "phe-duyet", "--agency", DEPARTMENT, "--note", "x"))
    legal_due = cli.state(dossier)["original_due_at"]
    out = cli.ok("dossiers", "return", dossier, "phe-duyet", "--agency", DEPARTMENT, "--to", "tham-dinh",
                 "--note", "Chưa đạt: thiếu trích đo")
    assert out.startswith(f"dossier {dossier}: step phe-duyet sent the dossier back to step tham-dinh (return 1)")
    again = assigned(cli, dossier, "tham-dinh")
    assert again["original_due_at"] == legal_due and again["return_count"] == 1
    assert [(p["id"], p["status"]) for p in again["earlier_passes"]] == [("tham-dinh", "completed"),
                                                                        ("phe-duyet", "returned")]
    assert "earlier passes (before a return):" in cli.ok("dossiers", "show", dossier)
    complete(cli, dossier, "tham-dinh", LAND_OFFICE)
    assigned(cli, dossier, "phe-duyet")
    assert "allows 1" in cli.refused("dossiers", "return", dossier, "phe-duyet", "--agency", DEPARTMENT,
                                     "--to", "tham-dinh", "--note", "lại chưa đạt")
    complete(cli, dossier, "phe-duyet", DEPARTMENT)

    # Status 9: decided, the result at the desk; a withdrawal now is refused with why.
    decided = assigned(cli, dossier, "tra-ket-qua")
    assert decided["status"] == "result_ready" and decided["portal_status"] == 9 and decided["verdict"]
    withdrawal = cli("dossiers", "withdraw", dossier, "--agency", DESK, "--note", "xin rút")
    assert withdrawal.returncode == 1 and withdrawal.stdout == ""
    assert withdrawal.stderr.strip().startswith(f"refused: dossier {dossier} is already decided (status 9 since ")
    assert "Decree 118 Art. 21" in withdrawal.stderr
    assert cli.state(dossier)["status"] == "result_ready"
    assert "processed:" in cli.ok("dossiers", "show", dossier)
    complete(cli, dossier, "tra-ket-qua", DESK)
    final = cli.until(dossier, lambda s: s["status"] == "completed", "completed")
    assert final["portal_status"] == 10 and final["verdict"] == decided["verdict"]

    document = sheet(cli, dossier, final["last_event_seq"])
    assert [(h["step_id"], h["from"], h["status"], h["earlier_pass"]) for h in document["handovers"]] == [
        ("tiep-nhan", "applicant", "completed", False),
        ("tham-dinh", DESK, "completed", True),
        ("phe-duyet", LAND_OFFICE, "returned", True),
        ("tham-dinh", DEPARTMENT, "completed", False),  # handed back by the step that returned it
        ("phe-duyet", LAND_OFFICE, "completed", False),
        ("tra-ket-qua", DEPARTMENT, "completed", False),
    ]
    assert [c["portal_status"] for c in document["portal_history"]] == [2, 4, 6, 4, 9, 10]
    assert document["result"]["finished_at"] is not None and document["result"]["obligation_count"] == 1
    assert "EARLIER PASS" in cli.ok("dossiers", "sheet", dossier)
    portal = [portal for _, portal in audit_log(stack, dossier, final["last_event_seq"]) if portal]
    assert portal == [2, 4, 6, 4, 9, 10]


def test_an_online_submission_outside_the_desk_scope_is_refused_and_reserves_nothing(stack: DevStack,
                                                                                      cli: Cli) -> None:
    for desk, words in ((OTHER_DESK, "for commune 'xa-tan-lap'"), (PROVINCE_DESK, "(level xa)")):
        dossier = new_id()
        line = cli.refused("dossiers", "submit", "--procedure", PROCEDURE, "--id", dossier, "--data", DATA,
                           "--channel", "online", "--received-by", desk)
        assert line.startswith(f"--received-by '{desk}' does not receive procedure {PROCEDURE}@1") and words in line
        with stack.sessions()() as session:
            assert session.get(DossierIdRow, dossier) is None
    assert "names the one-stop desk it is addressed to" in cli.refused(
        "dossiers", "submit", "--procedure", PROCEDURE, "--id", new_id(), "--data", DATA, "--channel", "online")


def test_a_dossier_waiting_for_a_desk_retired_since_is_refused_not_received(stack: DevStack, cli: Cli) -> None:
    """Runs last: it retires a desk of the stack's registry."""
    data = json.dumps({"commune": "xa-an-phu"})
    dossier, _ = submit(cli, "--channel", "online", "--received-by", OTHER_DESK, data=data)
    cli.until(dossier, lambda s: s["status"] == "submitted", "submitted")
    assert cli.ok("agencies", "retire", OTHER_DESK).startswith(f"retired agency {OTHER_DESK}")
    assert cli.refused("dossiers", "receive", dossier, "--agency", OTHER_DESK) == (
        f"dossier {dossier}: desk '{OTHER_DESK}' is retired; it receives no dossiers")
    assert cli.state(dossier)["status"] == "submitted"
    # Refused on its behalf, so it does not wait for ever.
    cli.ok("dossiers", "refuse", dossier, "--agency", OTHER_DESK, "--note", "Bộ phận một cửa đã giải thể")
    assert cli.until(dossier, lambda s: s["status"] == "not_received", "not received")["portal_status"] == 3


def test_help_names_each_change_and_its_legal_basis(cli: Cli) -> None:
    listing = cli.ok("dossiers", "--help")
    for command in ("receive", "refuse", "withdraw", "return", "resubmit", "complete"):
        assert command in listing
    assert "Mẫu 03" in cli.ok("dossiers", "refuse", "--help")
    assert "Art. 21" in cli.ok("dossiers", "withdraw", "--help")
    assert "returns_to" in cli.ok("dossiers", "return", "--help")
    assert "paid the financial obligation" in cli.ok("dossiers", "pay", "--help")
    assert "--await-receipt" in cli.ok("dossiers", "submit", "--help")
