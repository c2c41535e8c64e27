"""Limits enforced before any work: a pure ASGI middleware in front of the app.

In this order, each refusal an RFC 9457 problem:

1. a header that must appear once (Authorization, Idempotency-Key, Content-Type) sent
   twice → 400 `duplicate-header` (the gateway never picks one of two values);
2. `/public`: a token bucket per client → 429 `too-many-requests` with `Retry-After`;
3. a `Content-Length` above the body limit → 413 `payload-too-large`, unread;
4. `/v1`: the bearer token → 401 `unauthorized`, before the body is read (the caller
   is left in the request's state for gateway.auth);
5. the body, read up to the limit (a chunked body is cut off as soon as it passes it)
   → 413 `payload-too-large`;
6. a JSON body that is not UTF-8, nests deeper than MAX_BODY_DEPTH, holds a lone
   surrogate (`"\\ud800"`, which no UTF-8 text can carry) or a number beyond
   MAX_JSON_INTEGER / MAX_JSON_NUMBER_CHARS → 422 `invalid-request` naming where.

A refusal given before the body was read does not wait for it: a body declared
(Content-Length) within the limit is then skipped by the server unbuffered, keeping
the connection usable; a larger or chunked one is never read: the answer says
`Connection: close` and the connection is closed. The rate limit is per gateway process, in
memory (no extra service): with N gateway processes a client gets up to N times the
rate. Buckets are kept for at most MAX_TRACKED_CLIENTS clients; beyond that the least
recently seen is forgotten (it starts again with a full bucket).
"""

from __future__ import annotations

import ipaddress
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config.settings import Settings
from definitions.limits import MAX_BODY_DEPTH, MAX_JSON_INTEGER, MAX_JSON_NUMBER_CHARS
from gateway.auth import CALLER, authenticate
from gateway.context import GatewayContext
from gateway.problems import FieldError, GatewayProblem, problem_response
from services.submission import is_valid_unicode

ONCE_ONLY = ("authorization", "idempotency-key", "content-type")  # headers refused when repeated
PUBLIC_PREFIX = "/public/"
AGENCY_PREFIX = "/v1/"
MAX_TRACKED_CLIENTS = 10_000  # rate-limit buckets kept in memory (about 100 bytes each)
IPV6_CLIENT_PREFIX = 64  # an IPv6 client is its /64: one host usually holds a whole /64


@dataclass(frozen=True)
class GatewayLimits:
    max_body_bytes: int
    public_rate_per_minute: int
    public_burst: int
    trusted_proxies: str

    @classmethod
    def of(cls, settings: Settings) -> GatewayLimits:
        return cls(settings.gateway_max_body_bytes, settings.public_rate_per_minute, settings.public_burst,
                   settings.gateway_trusted_proxies)


class RateLimiter:
    """A token bucket per client: `burst` requests at once, refilled at `per_minute`."""

    def __init__(self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = MAX_TRACKED_CLIENTS) -> None:
        self.rate = per_minute / 60.0  # tokens a second
        self.burst = float(burst)
        self.clock = clock
        self.max_clients = max_clients
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client → (tokens, at)

    def take(self, client: str) -> float:
        """0 if `client` may go now (and counts it), else the seconds until it may."""
        now = self.clock()
        tokens, at = self.buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self.buckets[client] = (tokens, now)  # most recently seen last
        while len(self.buckets) > self.max_clients:
            self.buckets.popitem(last=False)
        return wait


def client_key(scope: Scope) -> str:
    """Who a rate limit counts: the client's address (after trusted proxies), an IPv6 one as its /64."""
    client = scope.get("client")
    host = str(client[0]) if client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False))
    return str(address)


class _TooBig:
    """A number literal beyond the bounds, kept as written so the walk can say where it is."""

    def __init__(self, literal: str) -> None:
        self.literal = literal


def _integer(literal: str) -> int | _TooBig:
    if len(literal) > MAX_JSON_NUMBER_CHARS:
        return _TooBig(literal)
    value = int(literal)
    return value if abs(value) <= MAX_JSON_INTEGER else _TooBig(literal)


def _fraction(literal: str) -> float | _TooBig:
    return _TooBig(literal) if len(literal) > MAX_JSON_NUMBER_CHARS else float(literal)


def _shown(literal: str) -> str:
    return literal if len(literal) <= 40 else f"{literal[:20]}…({len(literal)} characters)"


def json_faults(body: bytes, limit: int = 5) -> list[FieldError]:
    """What in a JSON body no route should ever see; [] when it is fine or not JSON at
    all (the app then says so with its own message)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        return [FieldError(location="body", message=(
            f"the body is not UTF-8 (byte 0x{body[err.start]:02x} at offset {err.start} cannot be decoded); "
            "send JSON encoded as UTF-8"))]
    try:
        value = json.loads(text, parse_int=_integer, parse_float=_fraction)
    except RecursionError:
        return [FieldError(location="body", message=(
            f"the body nests objects/arrays hundreds of levels deep; at most {MAX_BODY_DEPTH} (MAX_BODY_DEPTH)"))]
    except ValueError:
        return []  # not JSON: FastAPI's own error says where
    faults: list[FieldError] = []
    pending: list[tuple[Any, str, int]] = [(value, "body", 0)]
    while pending and len(faults) < limit:  # NaN and Infinity pass: the routes name them
        node, where, depth = pending.pop()
        if isinstance(node, dict | list):
            if depth + 1 > MAX_BODY_DEPTH:
                faults.append(FieldError(location=_short(where), message=(
                    f"nests more than {MAX_BODY_DEPTH} levels of objects/arrays (MAX_BODY_DEPTH)")))
                continue
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, item in items:
                if isinstance(key, str) and not is_valid_unicode(key):
                    shown = key.encode("utf-8", "backslashreplace").decode("ascii", "replace")
                    faults.append(FieldError(location=where, message=(
                        f"the key '{shown}' holds a lone surrogate (a \\ud800-\\udfff escape without its pair), "
                        "which is no character; expected text that UTF-8 can carry")))
                    continue
                pending.append((item, f"{where}.{key}", depth + 1))
        elif isinstance(node, str) and not is_valid_unicode(node):
            faults.append(FieldError(location=where, message=(
                "holds a lone surrogate (a \\ud800-\\udfff escape without its pair), which is no character; "
                "expected text that UTF-8 can carry")))
        elif isinstance(node, _TooBig):
            faults.append(FieldError(location=where, message=(
                f"the number {_shown(node.literal)} is beyond what JSON readers agree on: at most "
                f"{MAX_JSON_NUMBER_CHARS} characters (MAX_JSON_NUMBER_CHARS) and integers within ±{MAX_JSON_INTEGER} "
                "(MAX_JSON_INTEGER, RFC 7493); send larger values, or codes, as strings")))
    return faults


def _short(location: str) -> str:
    """A location hundreds of levels deep, with its middle left out."""
    parts = location.split(".")
    return location if len(parts) <= 8 else ".".join([*parts[:5], f"…({len(parts) - 7} more)", *parts[-2:]])


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _json_content(content_type: str | None) -> bool:
    """As FastAPI decides to parse a body as JSON: no Content-Type, or a json subtype."""
    if content_type is None:
        return True
    subtype = content_type.split(";", 1)[0].strip().lower().rpartition("/")[2]
    return subtype == "json" or subtype.endswith("+json")


class RequestGuard:
    def __init__(self, app: ASGIApp, context: GatewayContext, limits: GatewayLimits,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.context = context
        self.limits = limits
        self.public = RateLimiter(limits.public_rate_per_minute, limits.public_burst, clock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = list(scope["headers"])
        path: str = scope["path"]
        limit = self.limits.max_body_bytes
        length_text = _header(headers, b"content-length")
        declared = int(length_text) if length_text is not None and length_text.isdigit() else None
        # A refusal before the body is read: a body declared within the limit is left for
        # the server to skip (it discards it unbuffered; the connection stays usable), a
        # larger or chunked one (of unknown size) is never read: the connection is closed.
        unbounded = _header(headers, b"transfer-encoding") is not None or (declared or 0) > limit

        async def refuse(problem: GatewayProblem, close: bool = unbounded) -> None:
            extra = {"Connection": "close"} if close else {}
            response = problem_response(problem.status, problem.body(path), problem.headers | extra)
            await response(scope, _nothing, send)

        names = [key.lower() for key, _ in headers]
        repeated = [name.decode("latin-1") for name in ONCE_ONLY_BYTES if names.count(name) > 1]
        if repeated:
            await refuse(GatewayProblem("duplicate-header", "sent more than once: " + ", ".join(
                _TITLE[name] for name in repeated) + "; send each once (the gateway does not choose between values)"))
            return
        if path.startswith(PUBLIC_PREFIX):
            wait = self.public.take(client_key(scope))
            if wait > 0:
                seconds = max(1, math.ceil(wait))
                await refuse(GatewayProblem("too-many-requests", (
                    f"more than {self.limits.public_burst} requests at once or {self.limits.public_rate_per_minute} a "
                    f"minute from your address; retry after {seconds} s"), headers={"Retry-After": str(seconds)}))
                return
        if declared is not None and declared > limit:
            await refuse(GatewayProblem("payload-too-large", (
                f"the body is {declared} bytes (Content-Length); at most {limit} bytes")))
            return
        if path.startswith(AGENCY_PREFIX):
            try:
                caller = await authenticate(self.context, _header(headers, b"authorization"))
            except GatewayProblem as problem:
                await refuse(problem)
                return
            except SQLAlchemyError as err:  # outside the app's handlers: say 503 here, not 500
                await refuse(GatewayProblem("store-unavailable", f"the database did not answer: {type(err).__name__}",
                                            headers={"Retry-After": "5"}))
                return
            scope.setdefault("state", {})[CALLER] = caller
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > limit:
                await refuse(GatewayProblem("payload-too-large", (
                    f"the body is more than {limit} bytes; at most {limit} bytes")), close=True)
                return
            if not message.get("more_body", False):
                break
        if body and _json_content(_header(headers, b"content-type")):
            faults = json_faults(bytes(body))
            if faults:
                detail = "; ".join(f"{f.location}: {f.message}" for f in faults)
                await refuse(GatewayProblem("invalid-request", detail, errors=faults), close=False)
                return
        await self.app(scope, _replay(bytes(body), receive), send)


ONCE_ONLY_BYTES = tuple(name.encode("latin-1") for name in ONCE_ONLY)
_TITLE = {"authorization": "Authorization", "idempotency-key": "Idempotency-Key", "content-type": "Content-Type"}


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read once, then what the client sends next (its disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def trusted_proxies(limits: GatewayLimits | None) -> str:
    """uvicorn's forwarded_allow_ips: whose X-Forwarded-For names the client."""
    return limits.trusted_proxies if limits is not None else "127.0.0.1,::1"
