"""The metrics exporter: the store collector on its own registry, served over HTTP.

`lienthong exporter` (workers/commands_monitoring.py) and `lienthong dev` run it. One
exporter per database is enough (every number comes from the store); running two is
harmless, Prometheus just scrapes the same numbers twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from sqlalchemy.orm import Session, sessionmaker

from monitoring.collector import StoreCollector

DEFAULT_PORT = 9464


def build_registry(sessions: sessionmaker[Session], clock: Callable[[], datetime] | None = None,
                   process: bool = True) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(StoreCollector(sessions, clock))
    if process:
        ProcessCollector(registry=registry)
    return registry


@dataclass
class MetricsServer:
    """An HTTP server answering /metrics from one registry, on a daemon thread."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return self.server.server_port

    @property
    def address(self) -> str:
        return str(self.server.server_address[0])

    @property
    def url(self) -> str:
        host = self.address if ":" not in self.address else f"[{self.address}]"
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(registry: CollectorRegistry, address: str = "0.0.0.0", port: int = DEFAULT_PORT) -> MetricsServer:
    """Serve ``registry`` on ``address:port`` (0: any free port). Raises OSError when
    the port is taken."""
    server, thread = start_http_server(port, addr=address, registry=registry)
    return MetricsServer(server, thread)
