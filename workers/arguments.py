"""Argument types the commands share: bounded numbers and notes, refused by argparse
with a usage error (exit 2) that names the bound."""

from __future__ import annotations

import argparse

from definitions.limits import MAX_NOTE_CHARS


def positive(text: str) -> int:
    value = not_negative(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def note(text: str) -> str:
    """A --note or --reason: free text that goes into the dossier's history, bounded."""
    if len(text) > MAX_NOTE_CHARS:
        raise argparse.ArgumentTypeError(f"{len(text)} characters; at most {MAX_NOTE_CHARS} (MAX_NOTE_CHARS)")
    return text


def not_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value
