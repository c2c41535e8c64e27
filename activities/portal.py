"""Delivering the National Public Service Portal's outbox: one round of PortalSyncWorkflow
(workflows/portal_sync.py) is one `deliver_portal_changes` activity.

A round claims the eligible rows (store/portal_outbox.py: each dossier's oldest waiting
change, oldest first, `portal_batch_size` at a time), POSTs each one's message
(activities/portal_payload.py) with ``Idempotency-Key: <dossier>:<seq>`` (the same on
every attempt: the portal de-duplicates on it), and marks it delivered on a 2xx. It goes
on until nothing waits for `idle` seconds or it has sent for `round_seconds`.

How an answer is taken:

* 2xx: delivered (the stored payload loses the applicant's name);
* 5xx, 1xx/3xx, a timeout, no connection, and the 4xx that say nothing about the change
  (401/403: credentials, 404: the URL, 408: too slow, 429: too many): the attempt is
  recorded on the row (attempts, last_error) and counted, and the activity fails:
  Temporal retries it with backoff (DELIVERY_RETRY). The rows delivered before it stay
  delivered; the failed one is claimed first again, so a dossier's order holds;
* any other 4xx (400, 409, 413, 422 …: the portal refuses this change): the row is
  *parked*, counted (`http_4xx`) and logged, and the round goes on. Parking does not
  hold the dossier back: its later changes are sent, and as each message carries the
  dossier's whole timeline, the first one the portal accepts supersedes the parked
  change. One that nothing supersedes (the dossier's last change) shows in
  ``lienthong_portal_sync_parked`` (alert LienthongPortalChangesRefused) and in
  `lienthong portal parked`; `lienthong portal retry` sends it again once the cause
  is fixed.

No payload, applicant's name or response body is logged: dossier id, seq, kind and
status code only (the response's first characters go to the row's last_error).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import structlog
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import metrics
from activities.portal_payload import PortalPayload
from config.settings import Settings
from store import portal_outbox
from workflows.portal_sync import DELIVER_ACTIVITY, PortalRound

log = structlog.get_logger("lienthong.portal")

ROUND_SECONDS = 60.0  # a round sends for about this long, then reports (one activity in history)
IDLE_SECONDS = 30.0  # a round with nothing to send returns after this long
RETRY_4XX = frozenset({401, 403, 404, 408, 429})  # about the endpoint or the load, not the change
BODY_CHARS = 200  # of a refusal's body, kept in last_error


@dataclass(frozen=True)
class PortalConfig:
    url: str
    token: str | None = None
    batch_size: int = 50
    timeout: float = 10.0
    poll: float = 2.0
    idle: float = IDLE_SECONDS
    round_seconds: float = ROUND_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> PortalConfig | None:
        """None when the portal URL is not set (the sync is off)."""
        if settings.portal_url is None:
            return None
        token = settings.portal_token.get_secret_value() if settings.portal_token else None
        return cls(url=str(settings.portal_url), token=token, batch_size=settings.portal_batch_size,
                   timeout=settings.portal_timeout_seconds, poll=settings.portal_poll_seconds)


class PortalRetry(Exception):
    """An attempt that failed for a reason retrying can cure."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class PortalActivities:
    def __init__(self, sessions: sessionmaker[Session], config: PortalConfig | None,
                 http: httpx.Client | None = None) -> None:
        self._sessions = sessions
        self._config = config
        self._adapter = PortalPayload()
        self._http = http or httpx.Client(timeout=httpx.Timeout(config.timeout if config else 10.0))

    @property
    def adapter(self) -> PortalPayload | None:
        """For the store writes: the outbox is written only while the sync is on."""
        return self._adapter if self._config is not None else None

    @activity.defn(name=DELIVER_ACTIVITY)
    def deliver_portal_changes(self) -> PortalRound:
        config = self._config
        if config is None:  # this worker has no portal URL: wait, so the loop does not spin
            _pause(IDLE_SECONDS)
            return PortalRound(enabled=False)
        started = time.monotonic()
        idle_since = started
        done = PortalRound()
        while not _stopping():
            with self._sessions.begin() as session:
                rows = portal_outbox.claim(session, config.batch_size)
            if not rows:
                if time.monotonic() - idle_since >= config.idle:
                    break
                _pause(config.poll)
                continue
            for row in rows:
                if time.monotonic() - started >= config.round_seconds or _stopping():
                    return done
                if self._send(config, row):
                    done.delivered += 1
                else:
                    done.parked += 1
            idle_since = time.monotonic()
        return done

    def _send(self, config: PortalConfig, row: portal_outbox.Claimed) -> bool:
        """POST one change: True delivered, False parked; raises for Temporal to retry."""
        if activity.in_activity():
            activity.heartbeat(row.delivery_id)
        with self._sessions() as session:
            payloads = portal_outbox.payloads_until(session, row.dossier_id, row.seq)
        body = json.dumps(self._adapter.message(payloads), ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": row.delivery_id}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        where = {"dossier_id": row.dossier_id, "seq": row.seq, "kind": row.kind, "attempt": row.attempts + 1}
        try:
            try:
                response = self._http.post(config.url, content=body, headers=headers)
            except httpx.TimeoutException as err:
                raise PortalRetry("timeout", f"timed out ({type(err).__name__})") from err
            except httpx.HTTPError as err:
                raise PortalRetry("network", f"{type(err).__name__}: {err}") from err
            status = response.status_code
            if 200 <= status < 300:
                with self._sessions.begin() as session:
                    portal_outbox.mark_delivered(session, row.id, datetime.now(UTC),
                                                 self._adapter.without_person_data(payloads[-1]))
                metrics.PORTAL_SYNC_DELIVERED.inc()
                log.info("portal_change_delivered", status_code=status, **where)
                return True
            detail = f"HTTP {status}: {' '.join(response.text.split())[:BODY_CHARS]}"
            if 400 <= status < 500 and status not in RETRY_4XX:
                with self._sessions.begin() as session:
                    portal_outbox.park(session, row.id, datetime.now(UTC), detail)
                metrics.PORTAL_SYNC_FAILURES.labels("http_4xx").inc()
                log.error("portal_change_refused", status_code=status, **where)
                return False
            reason = "http_5xx" if status >= 500 else "http_4xx" if status >= 400 else "http_other"
            raise PortalRetry(reason, detail)
        except PortalRetry as err:
            with self._sessions.begin() as session:
                portal_outbox.record_failure(session, row.id, f"{err.reason}: {err}")
            metrics.PORTAL_SYNC_FAILURES.labels(err.reason).inc()
            log.warning("portal_change_not_delivered", reason=err.reason, **where)
            raise ApplicationError(f"the portal did not take {row.delivery_id} ({err.reason}); retried",
                                   type="PortalUnavailable") from None


def _stopping() -> bool:
    return activity.in_activity() and (activity.is_worker_shutdown() or activity.is_cancelled())


def _pause(seconds: float) -> None:
    """Sleep, heartbeating; cut short when the worker shuts down."""
    if not activity.in_activity():
        time.sleep(seconds)
        return
    activity.heartbeat()
    activity.wait_for_worker_shutdown_sync(seconds)
