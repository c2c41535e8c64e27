"""`lienthong db upgrade` and `lienthong definitions deploy|list|show|diff`, on a real
database (SQLite and PostgreSQL), in-process and without Temporal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from store import registry
from store.migrate import head
from store.models import AgencyRow, SectorRow
from tests.workers.conftest import Cli

LAND = "1.012756"
LAND_FILE = "procedures/dang-ky-dat-dai-lan-dau.yaml"
SHIPPED = len(list((Path(__file__).resolve().parents[2] / "definitions" / "procedures").glob("*.yaml")))


def deployed(cli: Cli) -> list[tuple[str, str]]:
    with cli.sessions()() as session:
        return [(row.ref, row.content_hash) for row in registry.list_definitions(session)]


def agencies(cli: Cli) -> set[str]:
    with cli.sessions()() as session:
        return set(session.scalars(select(AgencyRow.code)))


def write_version(cli: Cli, version: int, *, effective: str = "2025-07-01", change: str = "") -> Path:
    """A new version of the land procedure beside the shipped one."""
    text = (cli.definitions / LAND_FILE).read_text(encoding="utf-8")
    text = text.replace("version: 1", f"version: {version}").replace("effective_from: 2025-07-01",
                                                                      f"effective_from: {effective}")
    if change:
        text = text.replace("deadline: 17d", change)
    path = cli.definitions / "procedures" / f"dang-ky-dat-dai-v{version}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- db


def test_db_upgrade_is_idempotent(sqlite_cli: Cli) -> None:
    first = sqlite_cli.ok("db", "upgrade")
    assert first == sqlite_cli.ok("db", "upgrade")
    assert re.fullmatch(rf"database sqlite:///\S+lienthong\.db at revision {head()}\n", first)
    assert sqlite_cli.ok("db", "current").endswith("(up to date)\n")


def test_commands_refuse_an_unmigrated_database(sqlite_cli: Cli, tmp_path: Path) -> None:
    sqlite_cli.url = f"sqlite:///{tmp_path / 'empty.db'}"
    message = f"is at revision none, not {head()}: run `lienthong db upgrade`"
    assert sqlite_cli.refused("definitions", "deploy").endswith(message)
    assert sqlite_cli.refused("definitions", "list").endswith(message)
    assert sqlite_cli.refused("db", "current").endswith(message)


# ----------------------------------------------------------------------------- deploy


def test_deploy_then_again_is_unchanged(cli: Cli) -> None:
    out = cli.ok("definitions", "deploy", "--by", "alice").splitlines()
    assert [line.split()[0] for line in out[:SHIPPED]] == ["deployed"] * SHIPPED
    assert any(re.fullmatch(rf"deployed {re.escape(LAND)}@1 \(sha256 [0-9a-f]{{8}}…\)", line) for line in out)
    assert out[-1] == f"definitions: {SHIPPED} deployed, 0 unchanged"
    assert "bpmc-xa-xa-tan-lap" in agencies(cli)
    with cli.sessions()() as session:
        row = registry.get_definition(session, LAND, 1)
        assert row is not None and row.deployed_by == "alice"
        assert row.body == (cli.definitions / LAND_FILE).read_text(encoding="utf-8")
        assert session.scalar(select(func.count()).select_from(SectorRow)) > 0
    before = deployed(cli)

    again = cli.ok("definitions", "deploy", str(cli.definitions)).splitlines()
    assert f"unchanged {LAND}@1" in again
    assert again[-1] == f"definitions: 0 deployed, {SHIPPED} unchanged"
    assert deployed(cli) == before


def test_changed_content_under_a_deployed_version_is_refused_and_nothing_changes(cli: Cli) -> None:
    cli.ok("definitions", "deploy")
    before = deployed(cli)
    land = cli.definitions / LAND_FILE
    land.write_text(land.read_text(encoding="utf-8").replace("deadline: 17d", "deadline: 18d"), encoding="utf-8")
    # In the same deploy: a new version of another file and a new agency; all or nothing.
    write_version(cli, 2)
    registry_file = cli.definitions / "agencies.yaml"
    registry_file.write_text(registry_file.read_text(encoding="utf-8")
                             + "  - code: so-moi\n    name: Sở Mới\n    level: tinh\n", encoding="utf-8")

    line = cli.refused("definitions", "deploy")
    assert line.startswith(f"{land}: {LAND}@1 is already deployed with different content")
    assert "give the changed file a new version" in line and line.endswith("; nothing deployed")
    assert deployed(cli) == before  # no 1.012756@2 either
    assert "so-moi" not in agencies(cli)


def test_a_validation_problem_deploys_nothing(cli: Cli) -> None:
    broken = cli.definitions / "procedures" / "cap-giay-phep-xay-dung-nha-o.yaml"
    broken.write_text(broken.read_text(encoding="utf-8").replace("deadline: 15d", "deadline: 15 ngay"),
                      encoding="utf-8")
    result = cli("definitions", "deploy")
    assert result.code == 1
    problems = result.out.strip().splitlines()
    assert problems and all(re.match(rf"{re.escape(str(broken))}:\d+: ", p) for p in problems)
    assert any("deadline" in p for p in problems)
    assert re.fullmatch(r"\d+ problem\(s\) in \d+ file\(s\); nothing deployed", result.line())
    assert deployed(cli) == [] and agencies(cli) == set()  # registries not synced either


def test_deploy_one_file_syncs_the_definitions_folder_registries(cli: Cli, tmp_path: Path) -> None:
    draft = tmp_path / "elsewhere" / "land-v3.yaml"
    draft.parent.mkdir()
    draft.write_text((cli.definitions / LAND_FILE).read_text(encoding="utf-8").replace("version: 1", "version: 3"),
                     encoding="utf-8")
    assert cli.ok("definitions", "deploy", str(draft)).splitlines()[0].startswith(f"deployed {LAND}@3 ")
    assert [ref for ref, _ in deployed(cli)] == [f"{LAND}@3"]
    assert "vpdk-tinh" in agencies(cli)


def test_deploy_refusals(cli: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.refused("definitions", "deploy", str(empty)).startswith("nothing to deploy")
    missing = cli("definitions", "deploy", str(tmp_path / "nope.yaml"))
    assert missing.code == 1 and f"{tmp_path / 'nope.yaml'}:1: no such file or folder" in missing.out
    other = tmp_path / "other"
    (other / "procedures").mkdir(parents=True)
    assert cli.refused("definitions", "deploy", str(cli.definitions), str(other)).startswith(
        "more than one definitions folder given")


# ----------------------------------------------------------------------------- list / show / diff


def test_list_show_diff(cli: Cli) -> None:
    assert cli.ok("definitions", "list") == "no definitions deployed yet: run `lienthong definitions deploy`\n"
    cli.ok("definitions", "deploy", "--by", "alice")
    write_version(cli, 2, effective="2026-01-01", change="deadline: 20d")
    cli.ok("definitions", "deploy", "--by", "bob")

    listing = cli.ok("definitions", "list").splitlines()
    assert listing[0].split() == ["PROCEDURE", "EFFECTIVE", "SECTOR", "LEVEL", "DEPLOYED", "BY", "NAME"]
    v1 = next(line for line in listing if line.startswith(f"{LAND}@1 "))
    v2 = next(line for line in listing if line.startswith(f"{LAND}@2 "))
    assert v1.split()[1:4] == ["2025-07-01", "G13-TN01", "xa"] and " alice " in v1 and "Đăng ký đất đai" in v1
    assert v2.split()[1] == "2026-01-01" and " bob " in v2
    assert len(listing) == 1 + SHIPPED + 1

    newest = cli.ok("definitions", "show", LAND)
    assert newest.startswith(f"procedure:      {LAND}@2 Đăng ký đất đai")
    assert "effective from: 2026-01-01" in newest and " by bob" in newest
    header, body = newest.split("---\n", 1)
    assert "sector:         G13-TN01, level xa, calendar vn-gov" in header
    assert body == (cli.definitions / "procedures" / "dang-ky-dat-dai-v2.yaml").read_text(encoding="utf-8")
    assert cli.ok("definitions", "show", f"{LAND}@1").split("---\n", 1)[1] == \
        (cli.definitions / LAND_FILE).read_text(encoding="utf-8")

    diff = cli.ok("definitions", "diff", LAND, "1", "2").splitlines()
    assert diff[:2] == [f"--- {LAND}@1", f"+++ {LAND}@2"]
    assert "-version: 1" in diff and "+version: 2" in diff
    assert "-deadline: 17d" in diff and "+deadline: 20d" in diff
    assert cli.ok("definitions", "diff", LAND, "2", "2") == "identical\n"

    assert cli.refused("definitions", "show", f"{LAND}@7") == \
        f"procedure {LAND} has no deployed version 7: deployed versions are 1, 2"
    assert cli.refused("definitions", "show", "9.999") == \
        "procedure 9.999 is not deployed: run `lienthong definitions deploy`"
    assert cli.refused("definitions", "diff", LAND, "1", "5") == \
        f"procedure {LAND} has no deployed version 5: deployed versions are 1, 2"
    assert cli.refused("definitions", "show", f"{LAND}@x").startswith(f"procedure '{LAND}@x'")
    with pytest.raises(SystemExit) as usage:  # a usage error: argparse exits 2
        cli("definitions", "diff", LAND, "1", "two")
    assert usage.value.code == 2


def test_list_files_is_the_definitions_folder(sqlite_cli: Cli) -> None:
    out = sqlite_cli.ok("definitions", "list", "--files").splitlines()
    assert out[0].split() == ["PROCEDURE", "SECTOR", "LEVEL", "DEADLINE", "NAME"]
    assert any(line.startswith(f"{LAND}@1 ") and "17d" in line for line in out)

