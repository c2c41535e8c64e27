"""`lienthong agencies issue-token|revoke-token|tokens`, `lienthong gateway`, and the
gateway inside `lienthong dev`, as an operator runs them."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time

import httpx

from gateway.commands import dev_socket as dev_gateway_socket
from tests.gateway.stack import DESK, LIENTHONG, REPO, Stack, cli_env
from tests.processes import free_port


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_tokens_are_printed_once_listed_without_secrets_and_revoked(stack: Stack) -> None:
    issued = stack.lienthong("agencies", "issue-token", DESK, "--by", "nguyen.van.b")
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert re.fullmatch(r"lt_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", token)  # stdout: the token alone, for scripts
    token_id = token.split("_")[1]
    assert f"token {token_id} for {DESK}; shown once" in issued.stderr
    assert httpx.get(f"{stack.url}/v1/agency", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    listing = stack.lienthong("agencies", "tokens", DESK)
    assert listing.returncode == 0 and token_id in listing.stdout and "nguyen.van.b" in listing.stdout
    assert token.split("_", 2)[2] not in listing.stdout

    revoked = stack.lienthong("agencies", "revoke-token", token)  # the whole token works too
    assert revoked.returncode == 0 and f"token {token_id} of {DESK} revoked" in revoked.stdout
    assert httpx.get(f"{stack.url}/v1/agency", headers={"Authorization": f"Bearer {token}"}).status_code == 401

    assert one_line(stack.lienthong("agencies", "issue-token", "bpmc-xa-xa-tan-lapp")).startswith(
        "unknown agency bpmc-xa-xa-tan-lapp; close codes: bpmc-xa-xa-tan-lap")
    assert one_line(stack.lienthong("agencies", "revoke-token", "0" * 12)) == f"unknown token id {'0' * 12}"
    assert "neither a token id" in one_line(stack.lienthong("agencies", "revoke-token", "nonsense"))


def test_dev_prints_the_gateway_it_started(stack: Stack) -> None:
    assert re.search(rf"^gateway: +{re.escape(stack.url)} \(OpenAPI {re.escape(stack.url)}/openapi.json",
                     stack.output(), re.MULTILINE)


def test_lienthong_gateway_serves_until_interrupted(stack: Stack) -> None:
    port = free_port()
    process = subprocess.Popen([str(LIENTHONG), "gateway", "--port", str(port)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=REPO,
                               env=cli_env(stack.database_url, stack.definitions, stack.address))
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.25)
        else:
            raise AssertionError(process.stderr.read() if process.poll() is not None else "never answered")
        token = stack.token(DESK)
        assert httpx.get(f"{url}/v1/agency", headers={"Authorization": f"Bearer {token}"}).json()["code"] == DESK
        assert httpx.get(f"{url}/openapi.json").json()["info"]["title"] == "lienthong agency gateway"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert f"gateway listening on {url}" in out
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_lienthong_gateway_refuses_in_one_line(stack: Stack, tmp_path) -> None:
    def gateway(*args: str, database_url: str = stack.database_url) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(LIENTHONG), "gateway", *args], capture_output=True, text=True, cwd=REPO,
                              env=cli_env(database_url, stack.definitions, stack.address), timeout=60, check=False)

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert one_line(gateway("--port", str(port))).startswith(f"cannot listen on 127.0.0.1:{port}: ")
    unmigrated = f"sqlite:///{tmp_path / 'empty.db'}"
    assert one_line(gateway("--port", "0", database_url=unmigrated)).endswith("run `lienthong db upgrade`")


def test_dev_takes_another_port_when_8080_is_taken() -> None:
    first = dev_gateway_socket("127.0.0.1", None)  # 8080, or another port if 8080 is busy here
    try:
        second = dev_gateway_socket("127.0.0.1", None)
        assert second.getsockname()[1] not in (first.getsockname()[1], 8080)
        second.close()
    finally:
        first.close()


def test_dev_refuses_a_gateway_port_that_is_taken(stack: Stack) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(LIENTHONG), "dev", "--port", str(free_port()), "--ui-port", str(free_port()),
             "--gateway-port", str(port)], capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
            env=cli_env(f"sqlite:///{stack.log.parent / 'dev-refused.db'}", stack.definitions))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]  # after the dev server's own start-up chatter
    assert last.startswith(f"gateway: cannot listen on 127.0.0.1:{port}: ")
    assert last.endswith("; choose another with --gateway-port")
