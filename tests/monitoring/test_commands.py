"""`lienthong exporter`, and the metrics endpoints of `lienthong worker` / `dev`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.runtime import Runtime

from config.settings import Settings
from store.db import make_engine, make_session_factory
from store.migrate import upgrade
from tests.conftest import deploy_shipped
from tests.monitoring.conftest import DEFINITIONS, LIENTHONG, REPO, free_port
from workers.commands_monitoring import start_dev_metrics, start_worker_metrics


def env(database_url: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LIENTHONG_", "TEMPORAL_"))}
    return base | {"LIENTHONG_DATABASE_URL": database_url, "LIENTHONG_DEFINITIONS": str(DEFINITIONS),
                   "LIENTHONG_LOG_JSON": "false"}


def scrape(url: str) -> dict[str, float]:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return {s.name + str(sorted(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_exporter_command_serves_until_sigterm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lienthong.db'}"
    upgrade(url)
    port = free_port()
    process = subprocess.Popen([str(LIENTHONG), "exporter", "--port", str(port), "--address", "127.0.0.1"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env(url), cwd=REPO)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline().decode()
        assert f"exporter serving http://127.0.0.1:{port}/metrics" in banner, banner
        samples = scrape(f"http://127.0.0.1:{port}/metrics")
        assert samples["lienthong_exporter_store_up[]"] == 1
        assert "lienthong_exporter_collect_duration_seconds[]" in samples
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_exporter_command_refuses_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([str(LIENTHONG), "exporter", "--port", str(port), "--address", "127.0.0.1"],
                                capture_output=True, text=True, env=env(f"sqlite:///{tmp_path / 'x.db'}"),
                                timeout=60, cwd=REPO)
    assert result.returncode == 1
    assert result.stderr.strip() == f"cannot listen on 127.0.0.1:{port}: Address already in use"


@pytest.fixture
def keep_default_runtime() -> Iterator[None]:
    previous = Runtime.default()
    try:
        yield
    finally:
        Runtime.set_default(previous, error_if_already_set=False)


def test_dev_metrics_serve_exporter_worker_and_sdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   keep_default_runtime: None) -> None:
    url = f"sqlite:///{tmp_path / 'lienthong.db'}"
    upgrade(url)
    engine = make_engine(url)
    deploy_shipped(make_session_factory(engine))
    engine.dispose()
    ports = {name: free_port() for name in ("LIENTHONG_EXPORTER_PORT", "LIENTHONG_WORKER_METRICS_PORT",
                                            "LIENTHONG_SDK_METRICS_PORT")}
    for name, port in ports.items():
        monkeypatch.setenv(name, str(port))
    endpoints = start_dev_metrics(Settings(database_url=url), "127.0.0.1")
    try:
        assert set(endpoints.urls) == {"exporter", "worker", "temporal-sdk"}
        assert scrape(endpoints.urls["exporter"])["lienthong_exporter_store_up[]"] == 1
        worker = scrape(endpoints.urls["worker"])  # deployed procedures start at zero
        assert worker["lienthong_dossiers_received_total[('level', 'tinh'), ('procedure', '2.001610'), "
                      "('sector', 'G05-KD10')]"] == 0
        # The SDK runtime is the default now: it serves once a client exists; its port is bound.
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", ports["LIENTHONG_SDK_METRICS_PORT"])) == 0
    finally:
        endpoints.stop()


def test_a_taken_worker_metrics_port_is_a_warning_not_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                keep_default_runtime: None) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("LIENTHONG_WORKER_METRICS_PORT", str(taken.getsockname()[1]))
        monkeypatch.setenv("LIENTHONG_SDK_METRICS_PORT", "off")
        endpoints = start_worker_metrics(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}"), "127.0.0.1")
    assert endpoints.urls == {} and endpoints.servers == []
