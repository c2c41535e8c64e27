"""The National Public Service Portal's sync, as the front ends see it: starting its
one workflow (a worker whose portal URL is set does, at start), and what an operator
asks of the outbox (`lienthong portal status | parked | retry`)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from store import portal_outbox
from store.portal_outbox import Backlog, Failure, Parked
from workflows.portal_sync import PORTAL_SYNC_ID, PortalSyncWorkflow


async def ensure_portal_sync(client: Client, task_queue: str) -> str:
    """Start the sync workflow unless it runs already (every worker asks; one runs).
    Returns the run id of the one running."""
    handle = await client.start_workflow(
        PortalSyncWorkflow.run, id=PORTAL_SYNC_ID, task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE)
    return handle.result_run_id or ""


@dataclass(frozen=True)
class SyncStatus:
    backlog: Backlog
    failure: Failure | None  # the oldest waiting change that failed
    at: datetime  # when read

    @property
    def lag_seconds(self) -> float:
        oldest = self.backlog.oldest_pending_at
        return 0.0 if oldest is None else max(0.0, (self.at - oldest).total_seconds())


def status(sessions: sessionmaker[Session]) -> SyncStatus:
    with sessions() as session:
        return SyncStatus(portal_outbox.backlog(session), portal_outbox.oldest_failure(session), datetime.now(UTC))


def parked(sessions: sessionmaker[Session], dossier_ids: Collection[str] = ()) -> list[Parked]:
    with sessions() as session:
        return portal_outbox.list_parked(session, dossier_ids)


def retry_parked(sessions: sessionmaker[Session], dossier_ids: Collection[str] = ()) -> list[Parked]:
    with sessions.begin() as session:
        return portal_outbox.retry_parked(session, dossier_ids)
