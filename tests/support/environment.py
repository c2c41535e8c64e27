"""The one environment builder for lienthong processes the tests start: the caller's
environment without any LIENTHONG_*/TEMPORAL_* variable of the machine, then exactly
the settings the test names (config/settings.py reads them)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.codec import TEST_KEYS

REPO = Path(__file__).resolve().parents[2]
DEFINITIONS = REPO / "definitions"


def lienthong_env(database_url: str | None = None, definitions: Path | None = None, address: str | None = None,
                  **settings: str) -> dict[str, str]:
    """`database_url` defaults to an empty in-memory SQLite database (never the
    repository's own .lienthong/lienthong.db); `settings` are LIENTHONG_<NAME> values,
    e.g. `task_queue="q"`, `log_json="false"`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIENTHONG_", "TEMPORAL_"))}
    env["LIENTHONG_DEFINITIONS"] = str(definitions or DEFINITIONS)
    env["LIENTHONG_DATABASE_URL"] = database_url or "sqlite://"
    env["LIENTHONG_CODEC_KEYS"] = TEST_KEYS  # the tests' own clients use the same (tests/support/codec.py)
    if address:
        env["TEMPORAL_ADDRESS"] = address
    env |= {f"LIENTHONG_{name.upper()}": value for name, value in settings.items()}
    env["PYTHONUNBUFFERED"] = "1"  # log files are up to date when a failure dumps them
    return env
