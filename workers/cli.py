"""`lienthong`: the operators' command line.

Every refusal is one line on stderr and a non-zero exit (1 for a refusal, 2 for a
usage error): operators script these commands, and a traceback tells them nothing.
Dossier commands talk to Temporal through the dossier client (services/dossiers.py),
as the gateway does; registry, inbox and sheet commands read the
database named by `LIENTHONG_DATABASE_URL` (default: a SQLite file in `.lienthong/`).

This module runs one command; each `workers/commands_*.py` module owns its commands'
parsers (`add_parsers`) and what they do.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import NoReturn

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from config.settings import get_settings
from services.deploy import DeployError
from services.processes import StartError
from store.db import DatabaseURLError
from workers import (
    commands_bench,
    commands_calendars,
    commands_codec,
    commands_documents,
    commands_dossiers,
    commands_monitoring,
    commands_portal,
    commands_processes,
    commands_registry,
    commands_report,
    commands_store,
    commands_tokens,
)
from workers.commands_common import CliError, one_line

COMMAND_PLUGINS = "lienthong.commands"  # modules with add_parsers(commands, parser_class)


# ----------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The console script. Exits without interpreter teardown: the Temporal core's
    Rust threads can abort a finalizing CPython ("PyGILState_Release", exit 134
    after the work is done; temporalio/sdk-python#300)."""
    code = run(argv)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed pipe: nothing more to say
    os._exit(code)


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (tests call this in-process)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
        return int(args.run(args, settings) or 0)
    except (CliError, DeployError) as err:
        for detail in err.details:
            print(detail, flush=True)
        return _fail(str(err), code=err.exit_code if isinstance(err, CliError) else 1)
    except StartError as err:  # a process that cannot start (port, store, Temporal)
        return _fail(str(err))
    except DatabaseURLError as err:  # a URL no server can fix
        return _fail(f"bad LIENTHONG_DATABASE_URL: {err}")
    except SQLAlchemyError as err:  # a database that is down, refuses us, or lacks a table
        return _fail(f"database error: {one_line(getattr(err, 'orig', None) or err)}")
    except ValidationError as err:  # a bad LIENTHONG_* / TEMPORAL_* variable
        first = err.errors()[0]
        return _fail(f"bad setting {'.'.join(map(str, first['loc']))}: {first['msg']}")
    except BrokenPipeError:  # `... | head`: the reader has what it wanted
        return 141
    except KeyboardInterrupt:
        return _fail("interrupted", code=130)
    except Exception as err:  # a bug, not a user error: one line unless asked for details
        if _debug():
            raise
        return _fail(f"internal error: {type(err).__name__}: {one_line(err)} (set LIENTHONG_DEBUG=1 for a traceback)")


def _debug() -> bool:
    try:
        return get_settings().debug
    except ValidationError:
        return False


def _fail(message: str, code: int = 1) -> int:
    print(message, file=sys.stderr, flush=True)
    return code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the usage and the message on two lines; one is enough.
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


# Each module adds its commands (add_parsers), in the order `lienthong --help` lists them.
COMMAND_MODULES = (commands_registry, commands_processes, commands_monitoring, commands_dossiers, commands_documents,
                   commands_store, commands_calendars, commands_tokens, commands_codec, commands_portal,
                   commands_report)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lienthong", description="Route administrative-procedure dossiers between agencies.")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND", parser_class=_Parser)
    for module in COMMAND_MODULES:
        module.add_parsers(commands, _Parser)
    for plugin in entry_points(group=COMMAND_PLUGINS):  # the gateway's commands (gateway/commands.py)
        plugin.load().add_parsers(commands, _Parser)
    commands_bench.add_parsers(commands, _Parser)
    return parser


if __name__ == "__main__":
    main()
