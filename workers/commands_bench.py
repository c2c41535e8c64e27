"""`lienthong bench`: the throughput benchmark of `bench/` (lienthong against raw
Temporal on a local dev server); `python -m bench` is the same command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from workers.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def _bench_module() -> Any:
    # `bench/` is a development tool beside the packages, not installed with them:
    # find it in this checkout.
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import bench.run

    return bench.run


def add_parser(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    bench = commands.add_parser(
        "bench", help="throughput benchmark: lienthong against raw Temporal on a local dev server",
        description="Drive N dossiers of a K-step procedure through a local dev server, a worker and the "
                    "store, then the same with a raw-Temporal workflow; print both throughputs and their ratio.")
    _bench_module().add_arguments(bench)
    bench.set_defaults(run=_run)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    return int(_bench_module().run_from_args(args))
