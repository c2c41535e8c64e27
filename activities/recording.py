"""Recording every dossier transition: the audit log, the projection and the inboxes.

`write_changes` is the workflow's one store write per activation, run as a local
activity: its events, the projection moved forward to the state they lead to, the
agencies' inbox changes and (while its sync is on) the National Portal's outbox rows,
in one transaction (shared with the worker's other writes
waiting at the same moment: store/group_commit.py). Keyed by (dossier_id, seq) with a
projection that never moves back: a retried write changes nothing, and a transition
the workflow re-ran after a worker died (its local activity marker never reached
history) replaces what the lost run wrote for those seqs (store/projection.py).
"""

from __future__ import annotations

import structlog
from sqlalchemy.exc import DataError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import metrics
from activities.routing import log_routing
from store import projection
from store.group_commit import GroupWriter
from store.portal_outbox import PortalAdapter
from workflows.payloads import DossierEvent, StoreWrite

log = structlog.get_logger("lienthong.events")
# What a database refuses for the values themselves, not for its state (down, locked,
# busy: those raise OperationalError/InterfaceError and are retried).
PERMANENT = (DataError, IntegrityError, OverflowError, ValueError, TypeError)


def refused_for_good(err: BaseException) -> bool:
    """The value is the problem (also when SQLAlchemy wraps a Python error raised while
    binding a parameter); not a database that is down or busy."""
    if isinstance(err, (OperationalError, InterfaceError)):
        return False
    return isinstance(err, PERMANENT) or isinstance(getattr(err, "orig", None), PERMANENT)


class RecordingActivities:
    def __init__(self, sessions: sessionmaker[Session], portal: PortalAdapter | None = None) -> None:
        """`portal`: the National Portal's payload adapter while its sync is on; each write
        then also queues the changes the portal is told of (store/portal_outbox.py)."""
        self._sessions = sessions
        # The worker's writes that wait at the same time share a transaction
        # (store/group_commit.py): one commit for many dossiers, no lock contention.
        # Each write carries the workflow run it comes from: the projection records it,
        # and refuses another run's writes for the same dossier id (store/projection.py).
        self.writer: GroupWriter[tuple[StoreWrite, str | None], list[DossierEvent]] = GroupWriter(
            sessions, lambda session, item: projection.write_changes(session, item[0], run_id=item[1], portal=portal),
            key=lambda item: item[0].state.dossier_id)

    @activity.defn(name="write_changes")
    def write_changes(self, write: StoreWrite) -> None:
        run_id = activity.info().workflow_run_id if activity.in_activity() else None  # None: called directly
        try:
            new = self.writer.submit((write, run_id))
        except Exception as err:
            if not refused_for_good(err):
                raise  # Temporal retries (the store is down, busy, restarting)
            # Retrying cannot help: say so, so Temporal stops retrying.
            log.error("store_write_refused", dossier_id=write.state.dossier_id, error=" ".join(str(err).split())[:500])
            raise ApplicationError(f"the store refused this write: {type(err).__name__}: {err}",
                                   type="StoreRefused", non_retryable=True) from err
        state = write.state
        fresh = {event.seq for event in new}
        for event in write.events:
            if event.seq in fresh:  # committed for the first time: counted once, whatever the retries
                metrics.observe(event, state)
            log.info(
                "dossier_event",
                seq=event.seq,
                kind=event.kind,
                at=event.at.isoformat(),
                actor=event.actor,
                step_id=event.step_id,
                note=event.note,
                procedure=f"{state.procedure_code}@{state.procedure_version}",
                sector=state.sector,
                status=state.status.value,
                overdue=state.overdue,
                current_agencies=state.current_agencies,
                duplicate=event.seq not in fresh,
            )
        for routing in write.routings:
            log_routing(routing, bool(fresh))
