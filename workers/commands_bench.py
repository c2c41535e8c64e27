"""`lienthong bench`: the throughput benchmark of `bench/` (lienthong against raw
Temporal on a local dev server); `python -m bench` is the same command.

`bench/` is a development tool beside the packages, found in this checkout; an
installation without it (the production image) still parses every other command,
and `lienthong bench` says what is missing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from workers.commands_common import CliError
from config.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def _bench_module() -> Any | None:
    if (REPO / "bench" / "run.py").is_file() and str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    try:
        import bench.run
    except ImportError:
        return None
    return bench.run


def add_parser(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    bench = commands.add_parser(
        "bench", help="throughput benchmark: lienthong against raw Temporal on a local dev server",
        description="Drive N dossiers of a K-step procedure through a local dev server, a worker and the "
                    "store, then the same with a raw-Temporal workflow; print both throughputs and their ratio.")
    module = _bench_module()
    if module is not None:
        module.add_arguments(bench)
    bench.set_defaults(run=_run)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    module = _bench_module()
    if module is None:
        raise CliError(f"the benchmark is not installed here: run it from a checkout ({REPO / 'bench'} is missing)")
    return int(module.run_from_args(args))
