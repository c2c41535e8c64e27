"""Submission looks procedures and agencies up in the registry `deploy` fills
(SQLite and PostgreSQL): the newest version in effect, exactly CODE@VERSION, and
agencies known to the store rather than to whatever file is lying around."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from services.submission import StoreRegistry, SubmissionError, local_today, prepare_dossier
from tests.workers.conftest import Cli

LAND = "1.012756"
LAND_FILE = "procedures/dang-ky-dat-dai-lan-dau.yaml"
DATA = {"commune": "xa-tan-lap", "area_m2": 320}


def add_version(definitions: Path, version: int, effective: date) -> None:
    text = (definitions / LAND_FILE).read_text(encoding="utf-8")
    text = text.replace("version: 1", f"version: {version}").replace("effective_from: 2025-07-01",
                                                                      f"effective_from: {effective}")
    (definitions / "procedures" / f"land-v{version}.yaml").write_text(text, encoding="utf-8")


@pytest.fixture
def lookup(cli: Cli) -> Iterator[StoreRegistry]:
    cli.ok("definitions", "deploy")
    with cli.sessions()() as session:
        yield StoreRegistry(session, cli.definitions)


def test_newest_version_in_effect_is_chosen(cli: Cli) -> None:
    today = local_today()
    add_version(cli.definitions, 2, today + timedelta(days=30))
    cli.ok("definitions", "deploy")
    with cli.sessions()() as session:
        lookup = StoreRegistry(session, cli.definitions)
        # v2 is deployed but not in effect yet: v1 (effective 2025-07-01) is used.
        assert prepare_dossier(LAND, "HS-1", DATA, lookup, today).snapshot.ref == f"{LAND}@1"
        # From v2's date on (today-or-past), v2.
        for day in (today + timedelta(days=30), today + timedelta(days=400)):
            assert prepare_dossier(LAND, "HS-1", DATA, lookup, day).snapshot.ref == f"{LAND}@2"
        # CODE@VERSION is exactly that version, in effect or not.
        assert prepare_dossier(f"{LAND}@2", "HS-1", DATA, lookup, today).snapshot.ref == f"{LAND}@2"
        assert prepare_dossier(f"{LAND}@1", "HS-1", DATA, lookup, today + timedelta(days=400)).snapshot.ref \
            == f"{LAND}@1"


def test_version_effective_today_is_chosen_today(cli: Cli) -> None:
    today = local_today()
    add_version(cli.definitions, 2, today)
    cli.ok("definitions", "deploy")
    with cli.sessions()() as session:
        dossier = prepare_dossier(LAND, "HS-1", DATA, StoreRegistry(session, cli.definitions), today)
    assert dossier.snapshot.ref == f"{LAND}@2"
    assert dossier.snapshot.procedure.effective_from == today


def test_only_future_versions(cli: Cli) -> None:
    add_version(cli.definitions, 3, date(2030, 1, 1))
    cli.ok("definitions", "deploy", str(cli.definitions / "procedures" / "land-v3.yaml"))
    with cli.sessions()() as session, pytest.raises(SubmissionError) as err:
        prepare_dossier(LAND, "HS-1", DATA, StoreRegistry(session, cli.definitions), date(2026, 3, 2))
    assert str(err.value) == f"procedure {LAND} has no deployed version in effect on 2026-03-02 (v3 from 2030-01-01)"


def test_not_deployed(lookup: StoreRegistry) -> None:
    with pytest.raises(SubmissionError) as err:
        prepare_dossier("9.999999", "HS-1", DATA, lookup, local_today())
    assert str(err.value) == "procedure 9.999999 is not deployed: run `lienthong definitions deploy`"
    with pytest.raises(SubmissionError, match=r"close codes: 1\.012756"):
        prepare_dossier("1.012757", "HS-1", DATA, lookup, local_today())


def test_nothing_deployed_at_all(cli: Cli) -> None:
    with cli.sessions()() as session, pytest.raises(SubmissionError) as err:
        prepare_dossier(LAND, "HS-1", DATA, StoreRegistry(session, cli.definitions), local_today())
    assert str(err.value) == f"procedure {LAND} is not deployed: run `lienthong definitions deploy`"


def test_unknown_agency_is_refused_against_the_store(cli: Cli, lookup: StoreRegistry) -> None:
    # A commune added to agencies.yaml but never deployed: the running system does not know it.
    agencies = cli.definitions / "agencies.yaml"
    agencies.write_text(agencies.read_text(encoding="utf-8") + "".join(
        f"  - code: {prefix}-xa-xa-moi\n    name: {prefix} xã Mới\n    level: xa\n"
        for prefix in ("bpmc", "ubnd")), encoding="utf-8")
    with pytest.raises(SubmissionError) as err:
        prepare_dossier(LAND, "HS-1", {**DATA, "commune": "xa-moi"}, lookup, local_today())
    message = str(err.value)
    assert message.startswith("step 'tiep-nhan': agency 'bpmc-xa-{commune}' resolves to 'bpmc-xa-xa-moi', "
                              "which is not a registered agency")
    assert "known commune values: " in message and "xa-tan-lap" in message

    cli.ok("definitions", "deploy")  # now it is registered
    with cli.sessions()() as session:
        dossier = prepare_dossier(LAND, "HS-1", {**DATA, "commune": "xa-moi"},
                                  StoreRegistry(session, cli.definitions), local_today())
    assert dossier.data["commune"] == "xa-moi"


def test_receiving_desk_comes_from_the_store(lookup: StoreRegistry) -> None:
    dossier = prepare_dossier(LAND, "HS-1", DATA, lookup, local_today(), received_by="bpmc-xa-xa-tan-lap")
    assert dossier.received_by == "bpmc-xa-xa-tan-lap"
    with pytest.raises(SubmissionError, match="does not receive dossiers; one-stop desks are: .*bpmc-tinh"):
        prepare_dossier(LAND, "HS-1", DATA, lookup, local_today(), received_by="vpdk-tinh")
    with pytest.raises(SubmissionError, match="'bpmc-mars' is not a registered agency"):
        prepare_dossier(LAND, "HS-1", DATA, lookup, local_today(), received_by="bpmc-mars")


def test_submit_command_refuses_before_contacting_temporal(cli: Cli) -> None:
    line = cli.refused("dossiers", "submit", "--procedure", LAND, "--id", "HS-1", "--data", "{}")
    assert line == f"procedure {LAND} is not deployed: run `lienthong definitions deploy`"
