"""Signed webhooks to agencies' systems.

Each POST carries `X-Lienthong-Timestamp` (unix seconds) and
`X-Lienthong-Signature: sha256=<hex>`, the HMAC-SHA256 of `"<timestamp>." + body`
with the agency's secret, so a receiver can check origin and freshness with
`verify_signature`. Secrets come from the settings (the environment) only:
`LIENTHONG_WEBHOOK_SECRET_<AGENCY>` (agency code upper-cased, `-` → `_`), else
`LIENTHONG_WEBHOOK_SECRET`.

Retrying is Temporal's job: `deliver` sorts a response into delivered, refused
(a 4xx other than 408/429: retrying cannot help) or retryable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from config.settings import SHARED_SECRET_VARIABLE, Settings, agency_secret_variable

SIGNATURE_HEADER = "X-Lienthong-Signature"
TIMESTAMP_HEADER = "X-Lienthong-Timestamp"
DELIVERY_HEADER = "X-Lienthong-Delivery"
RETRYABLE_STATUS = {408, 429}


class MissingSecretError(RuntimeError):
    pass


class RetryableDeliveryError(RuntimeError):
    """The agency's system may accept it later (5xx, 408, 429, network)."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Literal["delivered", "refused"]
    status_code: int
    detail: str = ""


def secret_for(agency: str, settings: Settings) -> bytes:
    value = settings.webhook_secret_for(agency)
    if not value:
        raise MissingSecretError(f"no webhook secret for agency {agency}: set {agency_secret_variable(agency)} "
                                 f"or {SHARED_SECRET_VARIABLE}")
    return value


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: bytes, timestamp: str, body: bytes, signature: str,
                     *, now: float | None = None, tolerance_seconds: int = 300) -> bool:
    """For receivers: the signature matches and the timestamp is fresh."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)


def encode(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str).encode()


def deliver(client: httpx.Client, url: str, payload: Mapping[str, Any], secret: bytes, delivery_id: str,
            *, now: float | None = None) -> DeliveryResult:
    body = encode(payload)
    timestamp = int(time.time() if now is None else now)
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        DELIVERY_HEADER: delivery_id,  # the same on every retry: receivers de-duplicate on it
    }
    try:
        response = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as err:
        raise RetryableDeliveryError(f"POST {url} failed: {err.__class__.__name__}: {err}") from err
    status = response.status_code
    if status < 300:
        return DeliveryResult("delivered", status)
    if status >= 500 or status in RETRYABLE_STATUS:
        raise RetryableDeliveryError(f"POST {url} answered {status}", status)
    return DeliveryResult("refused", status, response.text[:500])
