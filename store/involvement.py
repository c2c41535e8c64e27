"""Whether an agency has a part in a dossier, from the store alone (cheap: indexed
reads), so a caller with none is refused before anything reaches the workflow."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from store import projection
from store.models import DossierIdRow, InboxItemRow


def involved(session: Session, agency: str, dossier_id: str) -> bool | None:
    """True when the store shows `agency` on the dossier: its inbox holds a step of it
    (the hand-over path: one primary-key read), it received it (or an online dossier is
    addressed to it), or the projection has a step of it or names it the result desk.
    False when the store knows the dossier and shows no part for `agency` (the store
    may lag the workflow: callers ask the workflow before refusing); None
    when the store does not know the dossier."""
    held = select(InboxItemRow.step_id).where(InboxItemRow.agency == agency,
                                              InboxItemRow.dossier_id == dossier_id).limit(1)
    if session.scalar(held) is not None:
        return True
    reserved = session.execute(select(DossierIdRow.received_by).where(DossierIdRow.id == dossier_id)).first()
    if reserved is not None and reserved[0] == agency:
        return True
    state = projection.get_dossier(session, dossier_id)
    if state is not None and (agency in (state.received_by, state.result_desk) or state.involves(agency)):
        return True
    return None if reserved is None and state is None else False
