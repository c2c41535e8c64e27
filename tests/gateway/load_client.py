"""The load test's client, run as a second process on loopback:

    python -m tests.gateway.load_client PLAN.json

PLAN: {"url": ..., "timeout": seconds, "phases": [{"name": ..., "concurrency": N, "requests": [
{"method": "POST", "path": ..., "token": ..., "key": ..., "body": {...}}, ...]}]}.
Each phase sends its requests N at a time (default: all at once, one connection
each, as that many agencies' systems would) and waits for every answer. Prints one JSON object:
per phase the latency percentiles (ms), the status counts and how many answers
were replays of a first answer.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections import Counter
from typing import Any

import httpx


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


async def one(http: httpx.AsyncClient, request: dict[str, Any]) -> tuple[float, int, bool]:
    headers = {"Authorization": f"Bearer {request['token']}", "Idempotency-Key": request["key"]}
    started = time.perf_counter()
    reply = await http.request(request.get("method", "POST"), request["path"], json=request.get("body", {}),
                               headers=headers)
    return (time.perf_counter() - started) * 1000, reply.status_code, reply.headers.get("idempotent-replayed") == "true"


async def phase(url: str, requests: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    gate = asyncio.Semaphore(concurrency)

    async def gated(http: httpx.AsyncClient, request: dict[str, Any]) -> tuple[float, int, bool]:
        async with gate:
            return await one(http, request)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as http:
        started = time.perf_counter()
        results = await asyncio.gather(*(gated(http, r) for r in requests))
        wall = time.perf_counter() - started
    latencies = [ms for ms, _, _ in results]
    return {
        "requests": len(results),
        "concurrency": concurrency,
        "statuses": dict(Counter(str(status) for _, status, _ in results)),
        "replayed": sum(1 for _, _, replayed in results if replayed),
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p90_ms": round(percentile(latencies, 0.90), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1),
        "mean_ms": round(statistics.fmean(latencies), 1),
        "wall_s": round(wall, 2),
        "per_s": round(len(results) / wall, 1),
    }


async def main(plan: dict[str, Any]) -> dict[str, Any]:
    report = {}
    for step in plan["phases"]:
        concurrency = step.get("concurrency") or len(step["requests"])
        report[step["name"]] = await asyncio.wait_for(phase(plan["url"], step["requests"], concurrency),
                                                      plan["timeout"])
    return report


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as source:
        print(json.dumps(asyncio.run(main(json.load(source)))))
