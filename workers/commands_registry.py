"""`lienthong db …` and `lienthong definitions deploy|list|show|diff`: the database
schema and the definition registry.

Deploy is all or nothing: every given file is validated first (any problem: nothing
is written), then the agency/sector registries and every procedure go in ONE
transaction, so a version conflict on the third file leaves the registry as it was.
"""

from __future__ import annotations

import argparse
import difflib

from sqlalchemy.orm import Session

from config.settings import Settings
from definitions.loader import DefinitionError, load_catalog, load_procedures
from services.deploy import DeployError, default_deployer, deploy_paths
from services.submission import SubmissionError, parse_ref
from store import registry
from store.migrate import current, head, upgrade
from store.models import DefinitionRow
from workers.commands_common import CliError, print_table, shown_url, store_sessions, when

# ----------------------------------------------------------------------------- db


def db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    revision = upgrade(settings.database_url)
    print(f"database {shown_url(settings)} at revision {revision}")
    return 0


def db_current(args: argparse.Namespace, settings: Settings) -> int:
    at, wanted = current(settings.database_url), head()
    if at != wanted:
        raise CliError(f"database {shown_url(settings)} is at revision {at or 'none'}, not {wanted}: "
                       "run `lienthong db upgrade`")
    print(f"database {shown_url(settings)} at revision {at} (up to date)")
    return 0


# ----------------------------------------------------------------------------- deploy


def deploy(args: argparse.Namespace, settings: Settings) -> int:
    paths = args.paths or [settings.definitions]
    with store_sessions(settings) as sessions:
        try:
            report = deploy_paths(sessions, paths, settings.definitions, args.by or default_deployer())
        except DeployError as err:
            raise CliError(str(err), err.details) from err
    for deployed in report.files:
        print(deployed.line())
    if line := report.registries_line():
        print(line)
    print(report.summary())
    return 0


# ----------------------------------------------------------------------------- list / show / diff


def list_deployed(args: argparse.Namespace, settings: Settings) -> int:
    if args.files:
        return list_files(settings)
    with store_sessions(settings) as sessions, sessions() as session:
        rows = list(registry.list_definitions(session))
    if not rows:
        print("no definitions deployed yet: run `lienthong definitions deploy`")
        return 0
    table = [("PROCEDURE", "EFFECTIVE", "SECTOR", "LEVEL", "DEPLOYED", "BY", "NAME")]
    for row in rows:
        table.append((row.ref, str(row.effective_from or "-"), row.sector, row.level, when(row.deployed_at),
                      row.deployed_by, row.name))
    print_table(table)
    return 0


def list_files(settings: Settings) -> int:
    try:
        snapshots = load_procedures(load_catalog(settings.definitions))
    except DefinitionError as err:
        raise CliError(f"{settings.definitions} has {len(err.problems)} problem(s); "
                       f"run `lienthong definitions validate {settings.definitions}`") from err
    rows = [("PROCEDURE", "SECTOR", "LEVEL", "DEADLINE", "NAME")]
    for snap in sorted(snapshots, key=lambda s: (s.procedure.code, s.procedure.version)):
        p = snap.procedure
        rows.append((p.ref, p.sector, p.level, p.deadline, p.name))
    print_table(rows)
    return 0


def show(args: argparse.Namespace, settings: Settings) -> int:
    try:
        code, version = parse_ref(args.ref)
    except SubmissionError as err:
        raise CliError(str(err)) from err
    with store_sessions(settings) as sessions, sessions() as session:
        row = _definition(session, code, version)
    print(f"procedure:      {row.ref} {row.name}")
    print(f"sector:         {row.sector}, level {row.level}, calendar {row.calendar}")
    print(f"effective from: {row.effective_from or '-'}")
    print(f"deployed:       {when(row.deployed_at)} by {row.deployed_by}")
    print(f"sha256:         {row.content_hash}")
    print("---")
    print(row.body, end="" if row.body.endswith("\n") else "\n")
    return 0


def diff(args: argparse.Namespace, settings: Settings) -> int:
    with store_sessions(settings) as sessions, sessions() as session:
        old = _definition(session, args.code, args.v1)
        new = _definition(session, args.code, args.v2)
    if old.body == new.body:
        print("identical")
        return 0
    lines = difflib.unified_diff(old.body.splitlines(keepends=True), new.body.splitlines(keepends=True),
                                 fromfile=old.ref, tofile=new.ref)
    for line in lines:
        print(line, end="" if line.endswith("\n") else "\n")
    return 0


def _definition(session: Session, code: str, version: int | None) -> DefinitionRow:
    row = registry.get_definition(session, code, version)
    if row is not None:
        return row
    versions = [str(r.version) for r in registry.list_definitions(session) if r.code == code]
    if not versions:
        raise CliError(f"procedure {code} is not deployed: run `lienthong definitions deploy`")
    raise CliError(f"procedure {code} has no deployed version {version}: deployed versions are {', '.join(versions)}")
