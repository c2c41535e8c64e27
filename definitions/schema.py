"""Typed shape of procedure step files and registries.

A procedure file is turned into a :class:`Procedure` before anything runs; the
workflow only ever sees this validated form (inside a :class:`ProcedureSnapshot`).
These models are pure: no I/O, safe to import from workflow code.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from datetime import date, time
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    Tag,
    field_validator,
    model_validator,
)

from definitions.durations import DURATION_PATTERN
from definitions.durations import EXPECTED as DURATION_EXPECTED
from definitions.limits import (
    DEFAULT_EXTENSIONS,
    DEFAULT_OBLIGATION_REQUESTS,
    DEFAULT_RETURNS,
    DEFAULT_SUPPLEMENT_REQUESTS,
    MAX_EXTENSIONS,
    MAX_OBLIGATION_REQUESTS,
    MAX_RETURNS,
    MAX_STEPS,
    MAX_SUPPLEMENT_REQUESTS,
)

Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, description=DURATION_EXPECTED, examples=["3d", "0.5d", "4h"]),
]
Code = Annotated[str, Field(min_length=1, max_length=120)]

OPERATORS = ("equals", "in", "gt", "gte", "lt", "lte")
DEFAULT_CALENDAR = "vn-gov"  # a procedure without `calendar:` counts its deadlines in this one
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class Condition(_Strict):
    """``when``: one field of the dossier's data and one comparison."""

    field: str = Field(min_length=1)
    equals: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> Condition:
        given = [op for op in OPERATORS if op in self._given()]
        if len(given) != 1:
            null = "; `equals: null` is not supported" if not given and "equals" in self.model_fields_set else ""
            raise ValueError(
                f"`when` takes exactly one of {', '.join(OPERATORS)} (got {', '.join(given) or 'none'}){null}"
            )
        return self

    def _given(self) -> set[str]:
        # An operator is given when it has a value (`equals: null` is not supported).
        return {op for op in OPERATORS if getattr(self, "in_" if op == "in" else op) is not None}

    @property
    def operator(self) -> str:
        return next(op for op in OPERATORS if op in self._given())

    def holds(self, data: dict[str, Any]) -> bool:
        """A missing field or an incomparable value makes the condition false."""
        if self.field not in data:
            return False
        value = data[self.field]
        op = self.operator
        if op == "equals":
            return bool(value == self.equals)
        if op == "in":
            return bool(value in (self.in_ or []))
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False
        bound = float(getattr(self, op))
        return {
            "gt": number > bound,
            "gte": number >= bound,
            "lt": number < bound,
            "lte": number <= bound,
        }[op]


class Step(_Strict):
    """One agency's share of the work, with its own deadline."""

    id: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str | None = None
    agency: str = Field(min_length=1, description="agency code; {field} is filled from the dossier data")
    deadline: Duration
    escalate_to: str | None = None
    when: Condition | None = None
    returns_to: list[str] = Field(
        default_factory=list, max_length=MAX_STEPS,
        description="steps this step may send the dossier back to (\"if not approved, send back to step 3\"): "
                    "each must come earlier in the same list (the same `sequence:`, or the top-level `steps:`), "
                    "never inside a parallel or another branch; the nodes of that list re-run from it "
                    "(definitions/returns.py)")
    returns_result: bool | None = Field(
        default=None,
        description="this step hands the result to the applicant (status 9 when it starts, 10 when done); "
                    "only on the last top-level node, a step. Default, set by the loader in the snapshot when "
                    "no step says it: true on that last step if its agency (every code its {field} template "
                    "can be) is a one-stop desk (receives_dossiers: true); `false` opts out")

    @property
    def title(self) -> str:
        return self.name or self.id

    def placeholders(self) -> list[str]:
        return _PLACEHOLDER.findall(self.agency)


class Sequence(_Strict):
    sequence: list[Node] = Field(min_length=1)


class Parallel(_Strict):
    """Every branch must finish; a branch is a step or a ``sequence``."""

    parallel: list[Branch] = Field(min_length=1)


def _node_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        if "parallel" in value:
            return "parallel"
        if "sequence" in value:
            return "sequence"
        return "step"
    if isinstance(value, Parallel):
        return "parallel"
    if isinstance(value, Sequence):
        return "sequence"
    if isinstance(value, Step):
        return "step"
    return None


Node = Annotated[
    Annotated[Step, Tag("step")] | Annotated[Parallel, Tag("parallel")] | Annotated[Sequence, Tag("sequence")],
    Discriminator(_node_tag),
]
# A parallel's branch: a step or a sequence (never a parallel directly).
Branch = Annotated[Annotated[Step, Tag("step")] | Annotated[Sequence, Tag("sequence")], Discriminator(_node_tag)]
Sequence.model_rebuild()
Parallel.model_rebuild()


class Procedure(_Strict):
    """A procedure step file (thủ tục hành chính): who does what, within which time."""

    code: str = Field(min_length=1, description="national procedure code, e.g. 1.012756")
    name: str = Field(min_length=1)
    sector: str = Field(min_length=1, description="a code from sectors.yaml")
    level: str = Field(min_length=1, description="a level used in agencies.yaml")
    version: int = Field(ge=1)
    effective_from: date | None = None
    calendar: str = DEFAULT_CALENDAR
    deadline: Duration
    on_supplement: Literal["pause", "restart"] = "pause"
    supplement_deadline: Duration | None = None
    receipt_cutoff: time | None = Field(
        default=None,
        description="a dossier received after this local time (15:00:00 is not after 15:00) counts from the "
                    "next working day; only where the procedure's text says so (Decree 23/2015 Art. 7, "
                    "Decree 63/2024 Art. 7(2)); default: the calendar's, which vn-gov does not set. No effect "
                    "on the continuous calendar",
    )
    # How often a dossier may be changed; the workflow's Update validators refuse the next one.
    max_extensions: StrictInt = Field(
        default=DEFAULT_EXTENSIONS, ge=0, le=MAX_EXTENSIONS,
        description="new appointments (an apology and a new appointment, Mẫu 04) one dossier may get; "
                    "Decree 61/2018 allowed one; unconfirmed under Decree 118/2025, so each procedure sets it",
    )
    max_extension: Duration | None = Field(
        default=None,
        description="how far past the current due a new appointment may be, in working time "
                    "(default: the procedure's own deadline); no rule confirmed, so a setting",
    )
    max_supplement_requests: StrictInt = Field(
        default=DEFAULT_SUPPLEMENT_REQUESTS, ge=1, le=MAX_SUPPLEMENT_REQUESTS,
        description="supplement requests one dossier may get (Decree 118 Art. 16-17: guide once; "
                    "Decision 766 judges a second request late)",
    )
    on_obligation: Literal["pause", "continue"] = Field(
        default="pause", description="whether the clocks stop while the applicant pays a financial obligation")
    max_obligation_requests: StrictInt = Field(
        default=DEFAULT_OBLIGATION_REQUESTS, ge=0, le=MAX_OBLIGATION_REQUESTS,
        description="financial obligations (Decree 118 Art. 24) one dossier may be asked to pay")
    max_returns: StrictInt = Field(
        default=DEFAULT_RETURNS, ge=0, le=MAX_RETURNS,
        description="times one dossier may be sent back to an earlier step (`returns_to`)")
    steps: list[Node] = Field(min_length=1)

    @field_validator("receipt_cutoff")
    @classmethod
    def _cutoff_is_local(cls, cutoff: time | None) -> time | None:
        if cutoff is not None and cutoff.tzinfo is not None:
            raise ValueError("receipt_cutoff is a local wall time of the procedure's calendar: no offset")
        return cutoff

    @field_validator("code", mode="before")
    @classmethod
    def _code_is_text(cls, value: Any) -> Any:
        # `code: 1.012756` in YAML is a float; procedure codes are strings.
        if not isinstance(value, str):
            raise ValueError('expected a string; quote the code, e.g. code: "1.012756"')
        return value

    @property
    def ref(self) -> str:
        return f"{self.code}@{self.version}"

    def iter_steps(self) -> Iterator[Step]:
        yield from iter_steps(self.steps)

    @property
    def result_step(self) -> str | None:
        """The step that returns the result to the applicant, if the procedure has one."""
        return next((step.id for step in self.iter_steps() if step.returns_result), None)


def iter_steps(nodes: list[Any]) -> Iterator[Step]:
    for node in nodes:
        if isinstance(node, Step):
            yield node
        elif isinstance(node, Parallel):
            yield from iter_steps(list(node.parallel))
        elif isinstance(node, Sequence):
            yield from iter_steps(node.sequence)


class ProcedureSnapshot(BaseModel):
    """What a dossier is started with: the validated procedure, frozen for its life."""

    model_config = ConfigDict(frozen=True)

    procedure: Procedure
    content_hash: str = Field(description="sha256 of the step file's bytes")
    source: str | None = Field(default=None, description="where it was read from")

    @property
    def ref(self) -> str:
        return self.procedure.ref


COMMUNE_FIELD = "commune"  # the dossier data field naming its commune (procedures route by `{commune}`)


class Receives(_Strict):
    """What a one-stop desk may receive (Decree 118/2025 Art. 14: desks receive regardless
    of administrative boundaries only the procedures on the province's published list)."""

    levels: list[Code] = Field(min_length=1, description="procedure levels it receives, e.g. [xa]")
    communes: list[Code] | None = Field(
        default=None, min_length=1,
        description=f"the dossier's `{COMMUNE_FIELD}` values it receives for; omitted: any commune",
    )
    province_wide: bool = Field(
        default=False,
        description="also every procedure of the registry's `province_wide_procedures`, at any level and "
                    "for any commune (the province's Art. 14 list; which procedures is the province's choice)",
    )


class Agency(_Strict):
    code: str = Field(min_length=1)
    name: str = Field(min_length=1)
    level: str = Field(min_length=1)
    webhook: str | None = None
    receives_dossiers: bool = False  # a one-stop desk (bộ phận một cửa) may take submissions
    receives: Receives | None = None  # a desk's receiving scope; required with receives_dossiers

    @field_validator("webhook")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        """An http(s) URL with a host, never a link-local, multicast or unspecified
        address (169.254.169.254 is a cloud's metadata service, not an agency)."""
        if value is None:
            return None
        url = urlsplit(value)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL with a host, e.g. https://he-thong.so.gov.vn/lienthong")
        try:
            address = ipaddress.ip_address(url.hostname)
        except ValueError:
            return value  # a name: resolved when delivering
        if address.is_link_local or address.is_multicast or address.is_unspecified:
            raise ValueError(f"{value!r} points at a link-local, multicast or unspecified address, not an agency")
        return value

    @model_validator(mode="after")
    def _scope_for_desks(self) -> Agency:
        if self.receives_dossiers and self.receives is None:
            raise ValueError("a one-stop desk (receives_dossiers: true) needs `receives:` with its levels "
                             "(and communes, or province_wide)")
        if self.receives is not None and not self.receives_dossiers:
            raise ValueError("`receives:` is only for one-stop desks; add receives_dossiers: true or remove it")
        return self


class Sector(_Strict):
    code: str = Field(min_length=1)
    name: str = Field(min_length=1)


class AgencyRegistry(_Strict):
    province_wide_procedures: list[Code] = Field(
        default_factory=list,
        description="procedure codes desks with `receives.province_wide` receive for any commune and level "
                    "(Decree 118/2025 Art. 14: each province publishes this list)",
    )
    agencies: list[Agency]


class SectorRegistry(_Strict):
    sectors: list[Sector]


class UnknownAgencyError(ValueError):
    pass


def resolve_agency(template: str, data: dict[str, Any]) -> str:
    """Fill ``{field}`` placeholders of an agency code from the dossier's data."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in data or data[name] in (None, ""):
            raise UnknownAgencyError(
                f"agency {template!r} needs field {name!r} in the dossier data"
            )
        return str(data[name])

    return _PLACEHOLDER.sub(fill, template)


def template_matches(template: str, code: str) -> bool:
    """Whether ``code`` could come from ``template`` (the fixed parts match)."""
    parts = _PLACEHOLDER.split(template)
    fixed = parts[0::2]
    pattern = ".+".join(re.escape(part) for part in fixed)
    return re.fullmatch(pattern, code) is not None
