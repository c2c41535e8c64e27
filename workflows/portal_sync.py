"""PortalSyncWorkflow: the one long-lived delivery loop of the National Public Service
Portal's outbox (README "National Public Service Portal").

Why a workflow of its own, and not an activity per change in DossierWorkflow: a dossier
never waits for the portal, and its history does not grow with deliveries or their
retries. Its store write queues the changes (store/portal_outbox.py, in the write's
transaction); this workflow, one per namespace (id ``portal-sync``, started by every
worker whose portal URL is set; a second start joins the running one), sends them.

Each round is one activity (`deliver_portal_changes`, activities/portal.py): it sends
what waits, each dossier's changes in seq order, for up to about a minute, and waits
for new ones while there are none. A portal that answers 5xx, times out or cannot be
reached fails the activity, and Temporal retries it with backoff (`DELIVERY_RETRY`,
forever: changes wait in the outbox, nothing is lost, the lag gauge grows and
LienthongPortalSyncStalled fires); no retry loop of ours. A 4xx about a change itself
parks that row (activities/portal.py). The history is bounded: continue-as-new after
`ROUNDS_PER_RUN` rounds, or sooner when Temporal suggests it.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

PORTAL_SYNC_ID = "portal-sync"
DELIVER_ACTIVITY = "deliver_portal_changes"
ROUNDS_PER_RUN = 500  # about 6 history events a round: a run stays near 3,000 events
# A round sends for up to ROUND_SECONDS (activities/portal.py), each POST bounded by the
# portal timeout setting (at most 60 s a phase); heartbeats come before each POST and
# while idle, so a worker that died is noticed within HEARTBEAT.
ROUND_TIMEOUT = timedelta(minutes=10)
HEARTBEAT = timedelta(minutes=5)
# 1 s, 2 s, 4 s … 1 min between attempts while the portal is down: a minute at most
# after it is back (the Decree 63/2024 bundle syncs within 10 minutes).
DELIVERY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                             maximum_interval=timedelta(minutes=1), maximum_attempts=0)


class PortalRound(BaseModel):
    """What one round did (kept in history: small)."""

    delivered: int = 0
    parked: int = 0
    enabled: bool = True  # False: the worker that ran it has no portal URL (it only waited)


@workflow.defn(name="PortalSync")
class PortalSyncWorkflow:
    def __init__(self) -> None:
        self._rounds = 0
        self._delivered = 0

    @workflow.run
    async def run(self, rounds_per_run: int = ROUNDS_PER_RUN) -> None:
        while self._rounds < rounds_per_run and not workflow.info().is_continue_as_new_suggested():
            done: PortalRound = await workflow.execute_activity(
                DELIVER_ACTIVITY, result_type=PortalRound, start_to_close_timeout=ROUND_TIMEOUT,
                heartbeat_timeout=HEARTBEAT, retry_policy=DELIVERY_RETRY)
            self._rounds += 1
            self._delivered += done.delivered
        workflow.continue_as_new(rounds_per_run)

    @workflow.query
    def delivered(self) -> int:
        """Changes delivered by this run (tests and operators; the store has the rest)."""
        return self._delivered
