"""`lienthong db …` and `lienthong definitions deploy|list|show|diff|graph`: the
database schema, the definition registry, and pictures of the definitions folder.

Deploy is all or nothing: every given file is validated first (any problem: nothing
is written), then the agency/sector registries and every procedure go in ONE
transaction, so a version conflict on the third file leaves the registry as it was.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from config.settings import Settings
from definitions.loader import DefinitionError, find_procedure, load_catalog, load_procedures, validate_paths
from definitions.schema import Procedure
from services.deploy import DeployError, default_deployer, deploy_paths
from services.graph import FORMATS, GraphError, render
from services.submission import SubmissionError, parse_ref
from store import registry
from store.migrate import current, head, upgrade
from store.models import DefinitionRow
from workers.arguments import positive
from workers.commands_common import CliError, print_table, shown_url, store_sessions, when

# ----------------------------------------------------------------------------- db


def add_parsers(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    db = commands.add_parser("db", help="the projection database's schema")
    db_action = db.add_subparsers(required=True, metavar="ACTION", parser_class=parser_class)
    db_action.add_parser("upgrade", help="migrate LIENTHONG_DATABASE_URL to the newest schema (idempotent)") \
        .set_defaults(run=db_upgrade)
    db_action.add_parser("current", help="the schema revision; exit 1 when behind") \
        .set_defaults(run=db_current)
    _definitions_parsers(commands, parser_class)


def _definitions_parsers(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    definitions = commands.add_parser("definitions", help="check, deploy and list procedure definitions")
    which = definitions.add_subparsers(required=True, metavar="ACTION", parser_class=parser_class)
    validate = which.add_parser("validate", help="check procedure files, folders and registries")
    validate.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                          help="files or folders (default: LIENTHONG_DEFINITIONS)")
    validate.set_defaults(run=_validate)
    deploy_parser = which.add_parser("deploy", help="validate, then store code@version immutably (all or nothing)")
    deploy_parser.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                               help="files or a definitions folder (default: LIENTHONG_DEFINITIONS)")
    deploy_parser.add_argument("--by", metavar="NAME", help="who deploys (default: $USER)")
    deploy_parser.set_defaults(run=deploy)
    listing = which.add_parser("list", help="the deployed definitions (--files: the definitions folder)")
    listing.add_argument("--files", action="store_true", help="list the procedure files instead")
    listing.set_defaults(run=list_deployed)
    show_parser = which.add_parser("show", help="a deployed definition: metadata and its YAML")
    show_parser.add_argument("ref", metavar="CODE[@VERSION]", help="newest deployed version without @VERSION")
    show_parser.set_defaults(run=show)
    diff_parser = which.add_parser("diff", help="unified diff of two deployed versions")
    diff_parser.add_argument("code", metavar="CODE")
    diff_parser.add_argument("v1", type=positive, metavar="V1")
    diff_parser.add_argument("v2", type=positive, metavar="V2")
    diff_parser.set_defaults(run=diff)
    graph_parser = which.add_parser("graph", help="draw a procedure of the definitions folder: Mermaid or SVG")
    graph_parser.add_argument("ref", metavar="CODE[@VERSION]",
                              help="the newest version in LIENTHONG_DEFINITIONS without @VERSION (or a file path)")
    graph_parser.add_argument("--format", choices=FORMATS,
                              help="mermaid (text), or svg (needs Graphviz's dot); default: svg for an "
                                   "--out FILE ending in .svg, mermaid otherwise")
    graph_parser.add_argument("--out", type=Path, metavar="FILE", help="write the picture there (default: stdout)")
    graph_parser.set_defaults(run=graph)


def _validate(args: argparse.Namespace, settings: Settings) -> int:
    paths = args.paths or [settings.definitions]
    checked, problems = validate_paths(paths)
    for problem in problems:
        print(problem)
    if problems:
        raise CliError(f"{len(problems)} problem(s) in {checked} file(s)")
    if checked == 0:
        raise CliError(f"nothing to validate: no definition files in {', '.join(map(str, paths))}")
    print(f"{checked} file{'s' if checked != 1 else ''} valid")
    return 0


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
    for line in report.retired_lines():
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


# ----------------------------------------------------------------------------- graph


def graph(args: argparse.Namespace, settings: Settings) -> int:
    """Nothing is written unless the whole picture was drawn."""
    out: Path | None = args.out
    form = args.format or ("svg" if out is not None and out.suffix.lower() == ".svg" else "mermaid")
    procedure = _folder_procedure(args.ref, settings.definitions)
    try:
        picture = render(procedure, form)
    except GraphError as err:
        raise CliError(str(err)) from err
    if out is None:
        sys.stdout.write(picture)
        return 0
    try:
        out.write_text(picture, encoding="utf-8")
    except OSError as err:
        raise CliError(f"cannot write {out}: {err.strerror or err}") from err
    print(f"{procedure.ref} drawn as {form} in {out}")
    return 0


def _folder_procedure(ref: str, root: Path) -> Procedure:
    """CODE@VERSION, or CODE's newest version in the folder whatever its effective_from
    (an operator draws the version they are writing), or a procedure file."""
    try:
        catalog = load_catalog(root)
        return find_procedure(ref, catalog, date.max).procedure
    except DefinitionError as err:
        raise CliError(f"{len(err.problems)} problem(s) in the definitions: nothing drawn",
                       [str(problem) for problem in err.problems]) from err
    except LookupError as err:
        raise CliError(str(err), exit_code=2) from err


def _definition(session: Session, code: str, version: int | None) -> DefinitionRow:
    row = registry.get_definition(session, code, version)
    if row is not None:
        return row
    versions = [str(r.version) for r in registry.list_definitions(session) if r.code == code]
    if not versions:
        raise CliError(f"procedure {code} is not deployed: run `lienthong definitions deploy`")
    raise CliError(f"procedure {code} has no deployed version {version}: deployed versions are {', '.join(versions)}")
