"""Helpers for tests that run real processes: a free loopback port, and stopping a
process without ever leaving it behind."""

from __future__ import annotations

import signal
import socket
import subprocess


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes], grace: float = 30, sig: int = signal.SIGINT) -> None:
    """`sig` (SIGINT, what Ctrl-C sends, unless told otherwise), then SIGKILL after
    `grace` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
