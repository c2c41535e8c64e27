"""Metrics endpoints of the lienthong processes.

* `lienthong exporter [--port 9464] [--address 0.0.0.0]`: the store's current-state
  gauges (monitoring/collector.py), computed at each scrape.
* `lienthong worker` / `lienthong dev`: the worker's event counters
  (activities/metrics.py) on ``$LIENTHONG_WORKER_METRICS_PORT`` (default 9465) and the
  Temporal SDK's own metrics (task latencies, slots, polls) on
  ``$LIENTHONG_SDK_METRICS_PORT`` (default 9466), bound to ``$LIENTHONG_METRICS_ADDRESS``
  (default 0.0.0.0; `dev` binds its --ip). `dev` also runs the exporter, on
  ``$LIENTHONG_EXPORTER_PORT`` (default 9464). A port set to ``off`` is not served.

A worker whose metrics port is taken logs a warning and goes on working: dossiers
matter more than their counters (and Prometheus then reports that target down).
"""

from __future__ import annotations

import argparse
import signal
import threading
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from activities import metrics
from config.logging import configure_logging
from config.settings import Settings
from monitoring.exporter import DEFAULT_PORT, MetricsServer, build_registry, serve
from store.db import make_engine, make_session_factory
from workers.commands_common import CliError, shown_url

log = structlog.get_logger("lienthong.metrics")



# ----------------------------------------------------------------------------- exporter


def add_parsers(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    exporter = commands.add_parser(
        "exporter", help="serve current-state metrics from the database to Prometheus (/metrics)")
    exporter.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    exporter.add_argument("--address", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    exporter.set_defaults(run=run_exporter)


def run_exporter(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until SIGINT/SIGTERM. The database is read at scrape time only: one that
    is down or not migrated yet shows as `lienthong_exporter_store_up 0`, and the
    exporter keeps answering."""
    configure_logging(settings.log_level, settings.log_json)
    engine = make_engine(settings.database_url)
    try:
        registry = build_registry(make_session_factory(engine))
        try:
            server = serve(registry, args.address, args.port)
        except OSError as err:
            raise CliError(f"cannot listen on {args.address}:{args.port}: {err.strerror or err}") from err
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        print(f"exporter serving {server.url} from database {shown_url(settings)}; Ctrl-C stops it", flush=True)
        try:
            while not stop.wait(1.0):
                pass
        finally:
            server.stop()
    finally:
        engine.dispose()
    return 0


# ----------------------------------------------------------------------------- workers


def sdk_runtime(bind_address: str) -> Runtime:
    """A Temporal runtime whose core serves its metrics in Prometheus format: counters
    named with `_total`, durations in seconds."""
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(
        bind_address=bind_address, counters_total_suffix=True, durations_as_seconds=True)))


@dataclass
class MetricsEndpoints:
    servers: list[MetricsServer] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)  # what -> URL, for the announcement

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers.clear()


def start_worker_metrics(settings: Settings, address: str | None = None) -> MetricsEndpoints:
    """Before the Temporal client is created: serve the worker's counters and make the
    SDK's Prometheus runtime the default one (clients and workers made afterwards in
    this process report through it)."""
    address = address or settings.metrics_address
    endpoints = MetricsEndpoints()
    _zero_known_series(settings)
    port = settings.worker_metrics_port
    if port is not None:
        try:
            server = serve(metrics.REGISTRY, address, port)
            endpoints.servers.append(server)
            endpoints.urls["worker"] = server.url
        except OSError as err:
            log.warning("worker_metrics_not_served", address=address, port=port, error=err.strerror or str(err))
    sdk_port = settings.sdk_metrics_port
    if sdk_port is not None:
        bind = f"[{address}]:{sdk_port}" if ":" in address else f"{address}:{sdk_port}"
        try:
            Runtime.set_default(sdk_runtime(bind), error_if_already_set=False)
            host = "127.0.0.1" if address in ("0.0.0.0", "") else address
            endpoints.urls["temporal-sdk"] = f"http://{host}:{sdk_port}/metrics"
        except Exception as err:  # the core says "Address already in use" as a ValueError
            log.warning("sdk_metrics_not_served", bind=bind, error=str(err))
    return endpoints


def start_dev_metrics(settings: Settings, address: str) -> MetricsEndpoints:
    """`lienthong dev`: the exporter plus the worker's endpoints, on ``address``."""
    endpoints = start_worker_metrics(settings, address)
    port = settings.exporter_port
    if port is not None:
        engine = make_engine(settings.database_url)
        try:
            server = serve(build_registry(make_session_factory(engine)), address, port)
            endpoints.servers.append(server)
            endpoints.urls["exporter"] = server.url
        except OSError as err:
            engine.dispose()
            log.warning("exporter_not_served", address=address, port=port, error=err.strerror or str(err))
    return endpoints


def _zero_known_series(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    try:
        metrics.initialize_from_store(make_session_factory(engine))
    except SQLAlchemyError as err:  # not migrated yet: series appear as dossiers come
        log.warning("metrics_not_initialized", error=" ".join(str(err).split())[:300])
    finally:
        engine.dispose()

