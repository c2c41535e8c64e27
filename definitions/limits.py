"""Named bounds: every size, count and depth a caller or an operator can push.

One place, so the gateway, the CLI, the loader and the workflow refuse the same
things with the same numbers, and so no caller can grow a dossier's Temporal
history without a bound its procedure sets (docs/performance.md has the worst case).
"""

from __future__ import annotations

# A procedure file.
MAX_STEPS = 100  # steps in one procedure (every branch counted)
MAX_NESTING = 4  # parallel/sequence depth

# A dossier's data (the applicant's form) at submission.
MAX_DATA_BYTES = 64 * 1024  # its JSON encoding, UTF-8
MAX_DATA_DEPTH = 16  # nested objects/arrays

# A procedure's validated snapshot travels in every dossier's workflow input.
MAX_PROCEDURE_JSON_BYTES = 128 * 1024  # the snapshot as JSON, UTF-8


# Free text an agency, a desk or an operator attaches to a change.
MAX_NOTE_CHARS = 2000

# Changes a procedure may allow; the procedure file picks a value up to these.
DEFAULT_EXTENSIONS = 1  # new appointments per dossier; Decree 61/2018: one (under Decree 118: unconfirmed)
MAX_EXTENSIONS = 5
DEFAULT_SUPPLEMENT_REQUESTS = 3  # Decree 118 Art. 16-17: guide once; 766 judges a second request late
MAX_SUPPLEMENT_REQUESTS = 10
DEFAULT_OBLIGATION_REQUESTS = 2  # financial obligations (Art. 24) one dossier may be asked for
MAX_OBLIGATION_REQUESTS = 5
DEFAULT_RETURNS = 3  # times a dossier may be sent back to an earlier step (approved internal procedures)
MAX_RETURNS = 20  # each return re-runs steps, so it bounds the dossier's history too
MAX_CALENDAR_APPLICATIONS = 50  # `calendars apply` Updates one dossier accepts

# A dossier's timeline picture (services/timeline.py): its current steps (at most
# MAX_STEPS) always have a row; earlier passes fill the rest, the most recent first.
MAX_TIMELINE_ROWS = 2 * MAX_STEPS

# A message to the National Public Service Portal (activities/portal_payload.py) carries the
# dossier's processing timeline (QuaTrinhXuLy): its latest entries up to this many. A dossier
# at every bound above could have thousands; a real one has tens.
MAX_PORTAL_TIMELINE_ENTRIES = 500

# A calendar snapshot (definitions/calendar.py): it travels in every dossier's
# workflow input and in `calendars apply` Updates, so it stays small.
MAX_WORKING_PERIODS = 8  # periods in one working day (the default, each weekday's, each season's)
MAX_SEASONS = 4  # seasonal variants of the working hours (summer/winter, ...) in one calendar
MAX_SNAPSHOT_YEARS = 10  # calendar years a snapshot's horizon may cover
MAX_SNAPSHOT_EXCEPTIONS = 400  # dated exceptions (days off + worked weekend days) in one snapshot
MAX_SNAPSHOT_JSON_BYTES = 24 * 1024  # a snapshot at every bound above, as JSON, stays under this

# A JSON request body at the gateway (gateway/guard.py), checked before it is parsed
# into a request model. Its size is a setting (LIENTHONG_GATEWAY_MAX_BODY_BYTES).
MAX_BODY_DEPTH = 2 * MAX_DATA_DEPTH  # objects/arrays: room for data nested past its bound, so that
# check names the field, while the nesting that breaks serialisers (hundreds deep) never gets in
MAX_JSON_INTEGER = 2**53 - 1  # I-JSON (RFC 7493 §2.2): integers every JSON reader represents exactly
# (dossier data is held to it at submission too, from the CLI and from the gateway)
MAX_JSON_NUMBER_CHARS = 32  # a number as written: a double needs at most 24 (-1.2345678901234567e-308)

# A YAML file of definitions (definitions/yaml_source.py), checked before it is read or parsed.
MAX_YAML_FILE_BYTES = 1024 * 1024  # the largest shipped file is a few kilobytes
MAX_YAML_ALIASES = 20  # aliases (*name) in one file: a few for shared lists, never a bomb

# Printed documents (services/documents): what one form or one book may hold.
MAX_FORM_DOCUMENTS = 100  # lines of the applicant's documents on a receipt slip; more are counted, not listed
MAX_FORM_TEXT_CHARS = 500  # one data field printed on a form (a name, an address): longer is cut with "…"
MAX_BOOK_ENTRIES = 2000  # dossiers in one `documents book` (a desk's month fits): ask for a shorter period
MAX_TEMPLATE_BYTES = 256 * 1024  # an operator's template file

# The Biểu 06 report (services/report.py): the longest period one report covers (a year,
# leap day included). Its queries read the audit log up to the period's end.
MAX_REPORT_DAYS = 366
