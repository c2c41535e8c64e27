"""The gateway's limits before any work (gateway/guard.py), against a real `lienthong
dev` whose limits are set small through its environment: a body over the limit is
refused from its Content-Length or while it streams (413) and a /v1 call's token is
checked before its body is read (401) — both answered while the client has sent only
headers and a few bytes, and the connection is then closed; repeated Authorization /
Idempotency-Key / Content-Type headers are refused (400); /public answers each client
address a bounded number of times (429 with Retry-After), other clients unaffected.
Each refusal changes nothing. (JSON edge cases are rows of test_bad_inputs.py.)"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from gateway.guard import RateLimiter, client_key
from store.models import Base
from tests.gateway.stack import DESK, TEST_PROCEDURE, Stack, start_stack

MAX_BODY = 100_000  # the stack's LIENTHONG_GATEWAY_MAX_BODY_BYTES: above any body the tests send otherwise
BURST = 3  # LIENTHONG_PUBLIC_BURST
RATE = 1  # LIENTHONG_PUBLIC_RATE_PER_MINUTE: one more every 60 s, so the test never sees a refill
HUNDRED_MB = 100 * 1024 * 1024
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("gateway-limits")
    running = start_stack(folder, f"sqlite:///{folder / 'lienthong.db'}", gateway_max_body_bytes=str(MAX_BODY),
                          public_rate_per_minute=str(RATE), public_burst=str(BURST))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def token(limited: Stack) -> str:
    return limited.token(DESK)


@pytest.fixture
async def http(limited: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=limited.url, timeout=60) as client:
        yield client


def rows(stack: Stack) -> dict[str, int]:
    """Rows in every table (requests stored for idempotency included)."""
    with stack.sessions()() as session:
        return {t.name: session.scalar(select(func.count()).select_from(t)) or 0 for t in Base.metadata.sorted_tables}


# --------------------------------------------------------------------------- raw HTTP: the server does not read


def exchange(stack: Stack, head: str, body_start: bytes) -> tuple[int, dict[str, str], bytes, bool]:
    """Send a request's head and the first bytes of its body, never the rest; read the
    answer. Returns status, headers, body and whether the server then closed the connection."""
    address = urlsplit(stack.url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body_start)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"closed without an answer: {received!r}"
            received += chunk
        raw_head, rest = received.split(b"\r\n\r\n", 1)
        lines = raw_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        while len(rest) < int(headers["content-length"]):
            chunk = sock.recv(65536)
            assert chunk, "closed mid-answer"
            rest += chunk
        closed = False
        if headers.get("connection") == "close":
            closed = sock.recv(65536) == b""  # the server hung up instead of reading the remaining body
    return status, headers, rest, closed


def head(path: str, *lines: str) -> str:
    return "\n".join([f"POST {path} HTTP/1.1", "Host: gateway", "Content-Type: application/json", *lines, ""])


def test_an_unauthenticated_100_mb_post_is_refused_from_its_content_length(limited: Stack) -> None:
    before = rows(limited)
    status, headers, body, closed = exchange(
        limited, head("/v1/dossiers", f"Content-Length: {HUNDRED_MB}", f"Idempotency-Key: {uuid.uuid4()}"),
        b'{"procedure": ')
    assert status == 413 and headers["content-type"] == PROBLEM
    assert f"the body is {HUNDRED_MB} bytes (Content-Length); at most {MAX_BODY} bytes".encode() in body
    assert b'"type":"/problems/payload-too-large"' in body
    assert headers["connection"] == "close" and closed
    assert rows(limited) == before


def test_an_unauthenticated_post_is_refused_before_its_body_is_read(limited: Stack) -> None:
    """Within the limit, but only 9 of its bytes sent: the 401 comes without waiting for
    the rest (the server would skip a body within the limit unbuffered, so the
    connection is kept for a client that sends it)."""
    before = rows(limited)
    for auth in ([], ["Authorization: Bearer lt_000000000000_" + "x" * 43]):
        status, headers, body, closed = exchange(
            limited, head("/v1/dossiers", f"Content-Length: {MAX_BODY}", f"Idempotency-Key: {uuid.uuid4()}", *auth),
            b'{"procedu')
        assert status == 401 and headers["www-authenticate"].startswith("Bearer")
        assert b'"type":"/problems/unauthorized"' in body
        assert "connection" not in headers and not closed
    assert rows(limited) == before


def test_after_a_refusal_the_connection_serves_the_next_request(limited: Stack) -> None:
    address = urlsplit(limited.url)
    body = b'{"outcome": "approved"}'
    refused = head("/v1/dossiers/HS-X/steps/a/complete", f"Content-Length: {len(body)}", "Idempotency-Key: k")
    then = "GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(refused.replace("\n", "\r\n").encode() + b"\r\n" + body + then.encode())
        received = b""
        while received.count(b"HTTP/1.1 ") < 2 or not received.endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    assert received.startswith(b"HTTP/1.1 401 ") and b"HTTP/1.1 200 " in received


def test_an_unauthenticated_chunked_post_is_refused_before_its_body_is_read(limited: Stack) -> None:
    status, headers, _, closed = exchange(
        limited, head("/v1/dossiers", "Transfer-Encoding: chunked", f"Idempotency-Key: {uuid.uuid4()}"),
        b"9\r\n{\"procedu\r\n")
    assert status == 401 and headers["connection"] == "close" and closed


def test_a_chunked_body_is_cut_off_once_past_the_limit(limited: Stack, token: str) -> None:
    """Authenticated, no Content-Length: the server reads up to the limit and no further."""
    before = rows(limited)
    chunk = b"x" * 16384
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MAX_BODY // len(chunk) + 1))
    status, headers, body, closed = exchange(
        limited, head("/v1/dossiers", "Transfer-Encoding: chunked", f"Idempotency-Key: {uuid.uuid4()}",
                      f"Authorization: Bearer {token}"), chunks)  # past the limit, never terminated
    assert status == 413, body
    assert f"the body is more than {MAX_BODY} bytes; at most {MAX_BODY} bytes".encode() in body
    assert headers["connection"] == "close" and closed
    assert rows(limited) == before


def test_a_body_within_the_limit_is_served(limited: Stack, token: str) -> None:
    dossier_id = f"HS-LIM-{uuid.uuid4().hex[:8]}"
    body = (f'{{"procedure": "{TEST_PROCEDURE}", "dossier_id": "{dossier_id}", '
            f'"data": {{"commune": "xa-tan-lap", "ghi_chu": "{"x" * 50_000}"}}}}').encode()
    assert len(body) < MAX_BODY
    reply = httpx.post(f"{limited.url}/v1/dossiers", content=body, timeout=60, headers={
        "Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/json"})
    assert reply.status_code == 201, reply.text


# --------------------------------------------------------------------------- repeated headers


@pytest.mark.parametrize("repeated", ["Authorization", "Idempotency-Key", "Content-Type"])
async def test_a_repeated_header_is_refused_not_resolved(limited: Stack, token: str, http: httpx.AsyncClient,
                                                         repeated: str) -> None:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4()),
               "Content-Type": "application/json"}
    second = {"Authorization": "Bearer lt_000000000000_" + "y" * 43, "Idempotency-Key": str(uuid.uuid4()),
              "Content-Type": "application/json"}[repeated]
    body = {"procedure": TEST_PROCEDURE, "dossier_id": f"HS-LIM-{uuid.uuid4().hex[:8]}",
            "data": {"commune": "xa-tan-lap"}}
    before = rows(limited)
    reply = await http.post("/v1/dossiers", json=body, headers=[*headers.items(), (repeated, second)])
    assert reply.status_code == 400 and reply.headers["content-type"] == PROBLEM
    problem = reply.json()
    assert problem["type"] == "/problems/duplicate-header"
    assert problem["detail"].startswith(f"sent more than once: {repeated};")
    assert rows(limited) == before
    # the same value twice is refused too: the gateway never picks one
    reply = await http.get("/v1/inbox", headers=[("Authorization", f"Bearer {token}")] * 2)
    assert reply.status_code == 400 and reply.json()["type"] == "/problems/duplicate-header"


# --------------------------------------------------------------------------- /public rate limit


async def test_public_is_rate_limited_per_client(limited: Stack) -> None:
    path = "/public/dossiers/HS-LIM-KHONG-CO"
    async with httpx.AsyncClient(base_url=limited.url, timeout=60) as first:
        answers = [await first.get(path) for _ in range(BURST)]
        assert [a.status_code for a in answers] == [404] * BURST
        refused = await first.get(path)
        assert refused.status_code == 429 and refused.headers["content-type"] == PROBLEM
        assert refused.json()["type"] == "/problems/too-many-requests"
        assert 1 <= int(refused.headers["retry-after"]) <= 60 // RATE
        assert f"retry after {refused.headers['retry-after']} s" in refused.json()["detail"]
        assert (await first.get("/healthz")).status_code == 200  # only /public is limited
    # Another client address (loopback has them all) has its own bucket ...
    other = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(base_url=limited.url, timeout=60, transport=other) as second:
        assert [(await second.get(path)).status_code for _ in range(BURST)] == [404] * BURST
        assert (await second.get(path)).status_code == 429
        # ... and cannot escape it by naming another client: it is no trusted proxy.
        spoofed = await second.get(path, headers={"X-Forwarded-For": "203.0.113.9"})
        assert spoofed.status_code == 429
    # A trusted proxy (loopback 127.0.0.1 by default) names its clients, each with its own bucket.
    async with httpx.AsyncClient(base_url=limited.url, timeout=60) as proxy:
        forwarded = await proxy.get(path, headers={"X-Forwarded-For": "203.0.113.10"})
        assert forwarded.status_code == 404


# --------------------------------------------------------------------------- the bucket, on a clock of its own


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_allows_a_burst_then_the_rate_and_says_how_long_to_wait() -> None:
    clock = Clock()
    bucket = RateLimiter(per_minute=60, burst=3, clock=clock)
    assert [bucket.take("a") for _ in range(3)] == [0, 0, 0]
    assert bucket.take("a") == pytest.approx(1.0)  # one a second
    assert bucket.take("b") == 0  # another client
    clock.now += 0.5
    assert bucket.take("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.take("a") == 0
    clock.now += 3600
    assert [bucket.take("a") for _ in range(4)][-1] > 0  # refilled to the burst, never beyond


def test_the_buckets_kept_are_bounded() -> None:
    bucket = RateLimiter(per_minute=60, burst=1, clock=Clock(), max_clients=3)
    for client in "abcd":
        bucket.take(client)
    assert list(bucket.buckets) == ["b", "c", "d"]  # the least recently seen forgotten
    assert bucket.take("a") == 0  # it starts again with a full bucket


def test_a_client_is_its_address_and_an_ipv6_client_its_64() -> None:
    assert client_key({"client": ("203.0.113.9", 5000)}) == "203.0.113.9"
    assert client_key({"client": ("::ffff:203.0.113.9", 5000)}) == "203.0.113.9"
    assert client_key({"client": ("2001:db8:1:2:aaaa::1", 5000)}) == client_key({"client": ("2001:db8:1:2::9", 1)})
    assert client_key({"client": ("2001:db8:1:2::1", 5000)}) == "2001:db8:1:2::/64"
    assert client_key({"client": ("2001:db8:1:3::1", 5000)}) != "2001:db8:1:2::/64"
    assert client_key({}) == "unknown"


def test_the_limits_are_published(limited: Stack) -> None:
    document = httpx.get(f"{limited.url}/openapi.json", timeout=30).json()
    public = document["paths"]["/public/dossiers/{dossier_id}"]["get"]["responses"]
    assert {"400", "413", "429"} <= set(public)
    submit = document["paths"]["/v1/dossiers"]["post"]["responses"]
    assert {"400", "401", "413", "422"} <= set(submit) and "429" not in submit
    types = {t["type"]: t for t in httpx.get(f"{limited.url}/problems", timeout=30).json()}
    assert types["/problems/payload-too-large"]["status"] == 413
    assert types["/problems/too-many-requests"]["status"] == 429
    assert types["/problems/duplicate-header"]["status"] == 400
