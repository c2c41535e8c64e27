"""Issue 13 §3 at submission and in the registry (SQLite and PostgreSQL): what a desk may
receive is data (`receives:` in agencies.yaml), and retired agencies (a deploy without
them, or `lienthong agencies retire`) lose their tokens and get no new steps. Every
refusal leaves the store as it was."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services import tokens
from services.submission import StoreRegistry, SubmissionError, local_today, prepare_dossier
from store.models import AgencyRow, DossierEventRow, DossierIdRow, DossierRow, GatewayTokenRow, InboxItemRow
from tests.workers.conftest import Cli
from workflows.payloads import DossierInput

LAND = "1.012756"  # level xa, routed to bpmc-xa-{commune} and vpdk-tinh; not on the province-wide list
BUSINESS = "2.001610"  # level tinh, not on the list
JUDICIAL = "2.000488"  # level tinh, on the shipped province-wide list
COMMUNE_DESK = "bpmc-xa-xa-tan-lap"
PROVINCE_DESK = "bpmc-tinh"


def counts(session: Session) -> tuple[int, ...]:
    return tuple(session.scalar(select(func.count()).select_from(model)) or 0
                 for model in (DossierIdRow, DossierRow, DossierEventRow, InboxItemRow, AgencyRow, GatewayTokenRow))


def prepare(cli: Cli, procedure: str, data: dict[str, object], desk: str) -> object:
    with cli.sessions()() as session:
        return prepare_dossier(procedure, "HS-SCOPE-1", data, StoreRegistry(session, cli.definitions),
                               local_today(), received_by=desk)


def test_a_desk_receives_its_level_and_commune_or_the_province_wide_list(cli: Cli) -> None:
    cli.ok("definitions", "deploy")
    own = {"commune": "xa-tan-lap", "area_m2": 320}
    other = {"commune": "xa-an-phu", "area_m2": 320}
    assert prepare(cli, LAND, own, COMMUNE_DESK)
    assert prepare(cli, BUSINESS, {}, PROVINCE_DESK)
    assert prepare(cli, JUDICIAL, {}, COMMUNE_DESK)  # Art. 14: on the list, any desk with province_wide
    refusals = [
        (LAND, other, COMMUNE_DESK, "--received-by 'bpmc-xa-xa-tan-lap' does not receive procedure 1.012756@1 for "
                                    "commune 'xa-an-phu': it receives level(s) xa for commune(s) xa-tan-lap and "
                                    "the province-wide list"),
        (BUSINESS, {}, COMMUNE_DESK, "does not receive procedure 2.001610@1 (level tinh)"),
        (LAND, own, PROVINCE_DESK, "--received-by 'bpmc-tinh' does not receive procedure 1.012756@1 (level xa): "
                                   "it receives level(s) tinh for any commune and the province-wide list"),
    ]
    with cli.sessions()() as session:
        before = counts(session)
    for procedure, data, desk, words in refusals:
        with pytest.raises(SubmissionError, match=re.escape(words)):
            prepare(cli, procedure, data, desk)
        # The CLI refuses alike, before anything is reserved or started.
        line = cli.refused("dossiers", "submit", "--procedure", procedure, "--id", "HS-SCOPE-2",
                           "--data", __import__("json").dumps(data), "--received-by", desk)
        assert words in line, line
    with cli.sessions()() as session:
        assert counts(session) == before


def test_the_scope_is_data_a_deploy_changes(cli: Cli) -> None:
    cli.ok("definitions", "deploy")
    path = cli.definitions / "agencies.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('  - "2.000488"  # cấp phiếu lý lịch tư pháp\n', ""), encoding="utf-8")
    assert "1 agency" not in cli.ok("definitions", "deploy")  # four desks' scopes changed
    with pytest.raises(SubmissionError, match="does not receive procedure 2.000488@1"):
        prepare(cli, JUDICIAL, {}, COMMUNE_DESK)
    with cli.sessions()() as session:
        row = session.get(AgencyRow, COMMUNE_DESK)
        assert row is not None and row.receives == {"levels": ["xa"], "communes": ["xa-tan-lap"],
                                                    "procedures": ["3.000722", "2.002913"]}


def test_a_deploy_without_an_agency_retires_it(cli: Cli) -> None:
    cli.ok("definitions", "deploy")
    now = datetime.now(UTC)
    with cli.sessions().begin() as session:
        issued = tokens.issue(session, "dien-luc-tinh", "test", now)
        session.add(InboxItemRow(agency="dien-luc-tinh", dossier_id="HS-OLD-1", step_id="dau-noi",
                                 procedure_code="9.9", procedure_version=1, sector="G13-TN01", step_name="Đấu nối",
                                 assigned_at=now, due_at=now + timedelta(days=3), created_at=now))
    with cli.sessions()() as session:
        assert tokens.authenticate(session, issued.token) is not None
    path = cli.definitions / "agencies.yaml"
    text = path.read_text(encoding="utf-8")
    block = "  - code: dien-luc-tinh\n    name: Công ty Điện lực tỉnh\n    level: trung-uong\n"
    assert block in text
    path.write_text(text.replace(block, ""), encoding="utf-8")
    out = cli.ok("definitions", "deploy")
    assert ("retired agency dien-luc-tinh (1 token(s) revoked); it still holds 1 open step(s): HS-OLD-1/dau-noi"
            in out), out
    with cli.sessions()() as session:
        row = session.get(AgencyRow, "dien-luc-tinh")
        assert row is not None and row.retired_at is not None  # kept: history names it
        assert tokens.authenticate(session, issued.token) is None
        assert tokens.refusal(session, issued.token).startswith("agency dien-luc-tinh was retired at ")
        assert session.get(InboxItemRow, ("dien-luc-tinh", "HS-OLD-1", "dau-noi")) is not None  # reported, kept
    assert "retired" not in cli.ok("definitions", "deploy")  # once
    assert "was retired" in cli.refused("agencies", "issue-token", "dien-luc-tinh")


def test_agencies_retire_stops_new_steps_and_tokens(cli: Cli) -> None:
    cli.ok("definitions", "deploy")
    with cli.sessions().begin() as session:
        issued = tokens.issue(session, "vpdk-tinh", "test", datetime.now(UTC))
    data = {"commune": "xa-tan-lap", "area_m2": 320}
    assert prepare(cli, LAND, data, COMMUNE_DESK)
    assert cli.ok("agencies", "retire", "vpdk-tinh").startswith(
        "retired agency vpdk-tinh (1 token(s) revoked); it holds no open step")
    with cli.sessions()() as session:
        before = counts(session)
        assert tokens.authenticate(session, issued.token) is None
    with pytest.raises(SubmissionError, match="'vpdk-tinh', which is retired; it receives no new steps"):
        prepare(cli, LAND, data, COMMUNE_DESK)
    line = cli.refused("dossiers", "submit", "--procedure", LAND, "--id", "HS-SCOPE-3",
                       "--data", '{"commune": "xa-tan-lap", "area_m2": 320}', "--received-by", COMMUNE_DESK)
    assert "which is retired" in line
    with cli.sessions()() as session:
        assert counts(session) == before
    assert cli.refused("agencies", "retire", "vpdk-tin").startswith("unknown agency vpdk-tin; close codes: vpdk-tinh")
    with pytest.raises(SubmissionError, match="'bpmc-tinh'.* retired"):
        cli.ok("agencies", "retire", PROVINCE_DESK)
        prepare(cli, BUSINESS, {}, PROVINCE_DESK)


def test_an_online_dossier_is_addressed_to_a_desk_whose_scope_covers_it(cli: Cli) -> None:
    """Issue 14: an online dossier (or one checked before receipt) names the desk that
    receives it, checked as any receiving desk (Art. 14); the result desk is a desk too."""
    cli.ok("definitions", "deploy")
    own = {"commune": "xa-tan-lap", "area_m2": 320}

    def online(desk: str | None, channel: str = "online", **options: Any) -> DossierInput:
        with cli.sessions()() as session:
            return prepare_dossier(LAND, "HS-ONLINE-1", own, StoreRegistry(session, cli.definitions), local_today(),
                                   channel, None, desk, **options)

    dossier = online(COMMUNE_DESK)
    assert dossier.awaits_receipt and dossier.received_by == COMMUNE_DESK
    assert not online(COMMUNE_DESK, await_receipt=False).awaits_receipt
    assert online(COMMUNE_DESK, channel="in_person", await_receipt=True).awaits_receipt
    assert online(COMMUNE_DESK, result_desk="bpmc-xa-xa-an-phu").result_desk == "bpmc-xa-xa-an-phu"
    refusals = [
        ((None,), {}, "an online dossier names the one-stop desk it is addressed to (--received-by)"),
        ((None,), {"channel": "in_person", "await_receipt": True},
         "a dossier checked before receipt (--await-receipt) names the desk that receives it"),
        ((PROVINCE_DESK,), {}, "--received-by 'bpmc-tinh' does not receive procedure 1.012756@1 (level xa)"),
        ((COMMUNE_DESK,), {"result_desk": "vpdk-tinh"}, "--result-desk 'vpdk-tinh' does not receive dossiers; "
                                                         "one-stop desks are: "),
        ((COMMUNE_DESK,), {"result_desk": "bpmc-xa-khong-co"}, "--result-desk 'bpmc-xa-khong-co' is not a "
                                                                "registered agency"),
    ]
    with cli.sessions()() as session:
        before = counts(session)
    for args, options, words in refusals:
        with pytest.raises(SubmissionError, match=re.escape(words)):
            online(*args, **options)
    # The CLI refuses alike, before anything is reserved or started.
    submit = ("dossiers", "submit", "--procedure", LAND, "--id", "HS-ONLINE-2", "--data", '{"commune": "xa-tan-lap"}')
    assert "names the one-stop desk it is addressed to" in cli.refused(*submit, "--channel", "online")
    assert "does not receive procedure 1.012756@1 (level xa)" in cli.refused(
        *submit, "--channel", "online", "--received-by", PROVINCE_DESK)
    assert "checked before receipt" in cli.refused(*submit, "--await-receipt")
    assert "--result-desk 'vpdk-tinh' does not receive dossiers" in cli.refused(
        *submit, "--received-by", COMMUNE_DESK, "--result-desk", "vpdk-tinh")
    with cli.sessions()() as session:
        assert counts(session) == before
