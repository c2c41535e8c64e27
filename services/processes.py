"""Process plumbing every long-running lienthong process shares."""

from __future__ import annotations

import asyncio
import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, so shutdown runs in order instead of a
    KeyboardInterrupt unwinding the stack wherever it happens to be."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    return stop


class StartError(RuntimeError):
    """A process that cannot start or go on (a port in use, a store behind, no
    Temporal); the message says why, on one line, for the operator."""
