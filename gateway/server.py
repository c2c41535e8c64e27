"""Serving the app with uvicorn until an event is set.

The caller owns the signals (`lienthong gateway` and `lienthong dev` stop on
SIGINT/SIGTERM through one event), so uvicorn's own signal capture is switched off.
The socket is bound before serving, so a port in use is one clear error up front
and port 0 gives a free port that can be printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from gateway.guard import trusted_proxies

GRACE = 10  # seconds for requests in flight when stopping


class GatewayBindError(RuntimeError):
    """The address cannot be bound; the message says which and why."""


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise GatewayBindError(f"cannot listen on {host}:{port}: {err.strerror or err}") from err
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(app: FastAPI, sock: socket.socket, stop: asyncio.Event) -> None:
    """Serve on `sock` until `stop` is set; requests in flight get GRACE seconds."""
    # X-Forwarded-For is believed from the trusted proxies only (a setting; never uvicorn's
    # own environment variable): the rate limit counts the client it names.
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                            timeout_graceful_shutdown=GRACE, server_header=False,
                            forwarded_allow_ips=trusted_proxies(getattr(app.state, "limits", None)))
    server = _Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        server.should_exit = True
        await serving
        sock.close()
