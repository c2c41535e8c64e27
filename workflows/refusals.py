"""The one vocabulary of refusals. A dossier's workflow refuses a change with one of
the first kinds (`ApplicationError.type`, before anything is written); the dossier
client (services/dossiers.py) adds the next ones, for what it learns from Temporal
itself, and the last, for what the registry says of a desk. Both front ends map these
kinds, and only these, to their own words."""

from __future__ import annotations

from enum import StrEnum


class RefusalKind(StrEnum):
    # The workflow's (validators of its Updates)
    DOSSIER_FINISHED = "DossierFinished"
    UNKNOWN_STEP = "UnknownStep"
    NOT_CURRENT = "NotCurrent"  # detail NOT_ROUTED_YET: not handed over yet, retried by the client
    WRONG_AGENCY = "WrongAgency"
    UNKNOWN_OUTCOME = "UnknownOutcome"
    NOTE_REQUIRED = "NoteRequired"
    AWAITING_SUPPLEMENT = "AwaitingSupplement"
    AWAITING_OBLIGATION = "AwaitingObligation"  # the step (or a new request) waits for the applicant to pay
    AWAITING_APPLICANT = "AwaitingApplicant"  # no return while the applicant holds the dossier
    NOT_AWAITING_SUPPLEMENT = "NotAwaitingSupplement"  # resubmitted while the applicant owes nothing
    ALREADY_RECEIVED = "AlreadyReceived"  # receive/refuse a dossier a desk already received
    NOT_RECEIVED = "NotReceived"  # withdraw a dossier no desk has received yet
    DECISION_MADE = "DecisionMade"  # status 9: no withdrawal, return or other outcome any more
    BAD_RETURN = "BadReturn"  # a return to a step not in the step's returns_to
    RETURN_LIMIT = "ReturnLimit"
    OBLIGATION_LIMIT = "ObligationLimit"
    REASON_REQUIRED = "ReasonRequired"
    BAD_EXTENSION = "BadExtension"
    EXTENSION_TOO_LATE = "ExtensionTooLate"  # less than one working day before the due, or after it
    EXTENSION_LIMIT = "ExtensionLimit"  # the dossier's new appointments are used up (max_extensions)
    SUPPLEMENT_LIMIT = "SupplementLimit"
    CALENDAR_LIMIT = "CalendarLimit"
    WRONG_CALENDAR = "WrongCalendar"
    REFUSED = "Refused"  # a refusal of no known kind (the message says why)
    # The client's
    UNKNOWN_DOSSIER = "UnknownDossier"
    DOSSIER_EXISTS = "DossierExists"
    NO_WORKER = "NoWorker"  # nothing answered in time: retry with the same idempotency key
    ENGINE_UNAVAILABLE = "EngineUnavailable"  # Temporal did not answer: retry with the same key
    INPUT_REFUSED = "InputRefused"  # Temporal refused the input for good (e.g. too large): do not retry
    # The dossier service's, from the registry (before anything reaches the dossier)
    OUT_OF_SCOPE = "OutOfScope"  # not a one-stop desk that may receive this dossier (Decree 118 Art. 14)

    @property
    def the_clients(self) -> bool:
        """One of the client's kinds (what it learns from Temporal, not a dossier's word)."""
        return self in (RefusalKind.UNKNOWN_DOSSIER, RefusalKind.DOSSIER_EXISTS, RefusalKind.NO_WORKER,
                        RefusalKind.ENGINE_UNAVAILABLE, RefusalKind.INPUT_REFUSED)

    @classmethod
    def of(cls, kind: str | None) -> RefusalKind:
        try:
            return cls(kind or cls.REFUSED)
        except ValueError:
            return cls.REFUSED
