"""Durations as written in step files: ``3d``, ``0.5d``, ``4h``, ``30m``, ``45s``.

A ``d`` is one *working day* of the calendar in use (8 h for ``vn-gov``, 24 h for
``continuous``), so turning text into a ``timedelta`` needs the day's length.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import TypeGuard

DURATION_PATTERN = r"^(?P<amount>\d+(\.\d+)?)(?P<unit>[dhms])$"
_DURATION_RE = re.compile(DURATION_PATTERN)
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}

EXPECTED = "a duration like 3d, 0.5d, 4h, 30m or 45s (d = working days)"


def parse_duration(text: str, day_length: timedelta) -> timedelta:
    """Working time for ``text``; raises ``ValueError`` naming what was expected."""
    if not isinstance(text, str):
        raise ValueError(f"duration {text!r}: expected {EXPECTED}")
    match = _DURATION_RE.match(text.strip())
    if match is None:
        raise ValueError(f"duration {text!r}: expected {EXPECTED}")
    try:
        amount = Decimal(match["amount"])
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise ValueError(f"duration {text!r}: expected {EXPECTED}") from exc
    unit = match["unit"]
    if unit == "d":
        seconds = amount * Decimal(day_length.total_seconds())
    else:
        seconds = amount * _UNIT_SECONDS[unit]
    # Whole microseconds keep the arithmetic exact and deterministic.
    return timedelta(microseconds=int(seconds * 1_000_000))


def is_duration(text: object) -> TypeGuard[str]:
    return isinstance(text, str) and _DURATION_RE.match(text.strip()) is not None
