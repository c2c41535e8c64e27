"""Running the real `lienthong` console script, and a real `lienthong dev` stack."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

LIENTHONG = Path(sys.executable).parent / "lienthong"
REPO = Path(__file__).resolve().parents[2]
DEFINITIONS = REPO / "definitions"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def cli_env(address: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIENTHONG_", "TEMPORAL_"))}
    env["LIENTHONG_DEFINITIONS"] = str(DEFINITIONS)
    if address:
        env["TEMPORAL_ADDRESS"] = address
    return env


def lienthong(*args: str, address: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LIENTHONG), *args], capture_output=True, text=True, env=cli_env(address),
                          timeout=timeout, cwd=REPO)


@dataclass
class DevStack:
    process: subprocess.Popen[bytes]
    port: int
    ui_port: int
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def stop_process(process: subprocess.Popen[bytes], grace: float = 30) -> None:
    """SIGINT (what Ctrl-C sends), then SIGKILL: never leave a process behind."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


@pytest.fixture(scope="module")
def dev_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    port, ui_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("dev") / "dev.log"
    env = cli_env() | {"LIENTHONG_LOG_JSON": "false"}
    with log.open("wb") as sink:
        process = subprocess.Popen([str(LIENTHONG), "dev", "--port", str(port), "--ui-port", str(ui_port)],
                                   stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    stack = DevStack(process, port, ui_port, log)
    try:
        for _ in range(120):  # bounded: the stack is usually up within a few seconds
            if process.poll() is not None:
                pytest.fail(f"lienthong dev exited with {process.returncode}:\n{stack.output()}")
            probe = lienthong("dossiers", "show", "nonexistent", address=stack.address)
            if "unknown dossier" in probe.stderr:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"lienthong dev never answered:\n{stack.output()}")
        yield stack
    finally:
        stop_process(process)
