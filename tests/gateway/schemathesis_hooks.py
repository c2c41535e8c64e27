"""Loaded by the schemathesis CLI (SCHEMATHESIS_HOOKS) in test_openapi.py.

A client uses a fresh Idempotency-Key per intended change; generated keys repeat
("0", "0", ...) across different bodies and would be rightly refused as reused.
Valid keys are made unique just before each call; invalid ones are left alone, so
the gateway's refusal of them is still tested. Replays are tested in test_idempotency."""

from __future__ import annotations

import re
import uuid
from typing import Any

import schemathesis

from gateway.idempotency import HEADER, KEY_PATTERN

_VALID = re.compile(KEY_PATTERN)


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == HEADER.lower() and isinstance(headers[name], str) and _VALID.match(headers[name]):
            headers[name] = uuid.uuid4().hex
