"""What the forms read from a dossier's data (the applicant's part of the workflow input).

The names below are the contract with desks' systems and the README's "Documents"
table. A field that is absent, or not of the expected type, is printed as a blank line
to fill by hand, never guessed; each one of the wrong type is reported as a warning.

| form field | data field (first found) |
|---|---|
| applicant's name | `applicant_name`, `applicant` (text), `applicant.name` |
| address | `applicant_address`, `applicant.address`, `address` |
| phone | `phone`, `applicant.phone` |
| email | `email`, `applicant.email` |
| identity document number | `id_number`, `applicant.id_number` |
| what is requested | `request` (default: the procedure's name) |
| documents received | `documents`: a list of `{name, kind, count}`, kind `original` / `certified_copy` / `copy` |
| number of sets | `sets` |
| where the result is returned | `result_delivery`: `desk` or `post` (with `result_address` for post) |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from definitions.limits import MAX_FORM_DOCUMENTS, MAX_FORM_TEXT_CHARS

DOCUMENT_KINDS = {"original": "Bản chính", "certified_copy": "Bản sao có chứng thực", "copy": "Bản sao"}
DELIVERIES = ("desk", "post")


@dataclass(frozen=True)
class DocumentLine:
    name: str | None
    kind: str | None  # in Vietnamese, as printed
    count: int | None


@dataclass
class DataFields:
    name: str | None = None
    address: str | None = None
    phone: str | None = None
    email: str | None = None
    id_number: str | None = None
    request: str | None = None
    documents: list[DocumentLine] | None = None  # None: not given (a blank table is printed)
    documents_left_out: int = 0  # beyond MAX_FORM_DOCUMENTS
    sets: int | None = None
    result_delivery: str | None = None  # desk | post
    result_address: str | None = None
    warnings: list[str] = field(default_factory=list)


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return None
    text = " ".join(value.split())
    return text if len(text) <= MAX_FORM_TEXT_CHARS else text[:MAX_FORM_TEXT_CHARS - 1] + "…"


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class _Reader:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.warnings: list[str] = []
        nested = data.get("applicant")
        self.applicant = nested if isinstance(nested, dict) else {}

    def text(self, *paths: str) -> str | None:
        """The first of `paths` (`a` or `a.b`) present; one of the wrong type is a warning."""
        for path in paths:
            present, value = self._at(path)
            if not present or value is None:
                continue
            if isinstance(value, dict) and path == "applicant":
                continue  # the nested form: read through applicant.*
            text = _text(value)
            if text is None:
                self.warnings.append(f"data field {path} is not text ({_shown(value)}): left blank")
            return text
        return None

    def _at(self, path: str) -> tuple[bool, Any]:
        first, _, rest = path.partition(".")
        if not rest:
            return first in self.data, self.data.get(first)
        return rest in self.applicant, self.applicant.get(rest)

    def count(self, path: str) -> int | None:
        if path not in self.data:
            return None
        value = _count(self.data[path])
        if value is None:
            self.warnings.append(f"data field {path} is not a whole number ({_shown(self.data[path])}): left blank")
        return value

    def documents(self) -> tuple[list[DocumentLine] | None, int]:
        given = self.data.get("documents")
        if given is None:
            return None, 0
        if not isinstance(given, list):
            self.warnings.append(f"data field documents is not a list ({_shown(given)}): left blank")
            return None, 0
        lines = []
        for index, item in enumerate(given[:MAX_FORM_DOCUMENTS]):
            where = f"documents[{index}]"
            if isinstance(item, str):
                lines.append(DocumentLine(_text(item), None, None))
                continue
            if not isinstance(item, dict):
                self.warnings.append(f"data field {where} is not an object ({_shown(item)}): left blank")
                lines.append(DocumentLine(None, None, None))
                continue
            name = _text(item.get("name"))
            if item.get("name") is not None and name is None:
                self.warnings.append(f"data field {where}.name is not text: left blank")
            kind_value = item.get("kind")
            kind = DOCUMENT_KINDS.get(kind_value) if isinstance(kind_value, str) else None
            if kind_value is not None and kind is None:
                kind = _text(kind_value)  # the desk's own word, printed as given
                if kind is None:
                    self.warnings.append(f"data field {where}.kind is not text: left blank")
            count = _count(item.get("count"))
            if item.get("count") is not None and count is None:
                self.warnings.append(f"data field {where}.count is not a whole number: left blank")
            lines.append(DocumentLine(name, kind, count))
        return lines, max(0, len(given) - MAX_FORM_DOCUMENTS)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def read_fields(data: dict[str, Any] | None) -> DataFields:
    """The forms' fields from a dossier's data; all blank for None (data not available)."""
    if data is None:
        return DataFields()
    reader = _Reader(data)
    fields = DataFields(
        name=reader.text("applicant_name", "applicant", "applicant.name"),
        address=reader.text("applicant_address", "applicant.address", "address"),
        phone=reader.text("phone", "applicant.phone"),
        email=reader.text("email", "applicant.email"),
        id_number=reader.text("id_number", "applicant.id_number"),
        request=reader.text("request"),
        sets=reader.count("sets"),
        result_address=reader.text("result_address"),
    )
    fields.documents, fields.documents_left_out = reader.documents()
    delivery = data.get("result_delivery")
    if delivery is not None:
        if delivery in DELIVERIES:
            fields.result_delivery = delivery
        else:
            reader.warnings.append(f"data field result_delivery is {_shown(delivery)}, expected desk or post: "
                                   "left blank")
    fields.warnings = reader.warnings
    return fields
