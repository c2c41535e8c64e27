"""Which form is which: the kinds of document the one-stop mechanism prints, and the
numbers each edition of the forms gives them (one table; LEGAL.md "Forms").

Circular 03/2025/TT-VPCP numbers them 01–07; many provinces still print the numbering
of Circular 01/2018/TT-VPCP (no stop notice; 04 apology, 05 control sheet, 06 tracking
book). `LIENTHONG_FORMS_EDITION` chooses; a kind an edition does not number is still
printed when asked for by name (`--form stop-notice`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FormKind(StrEnum):
    RECEIPT = "receipt"  # Giấy tiếp nhận hồ sơ và hẹn trả kết quả
    SUPPLEMENT_REQUEST = "supplement-request"  # Phiếu yêu cầu bổ sung, hoàn thiện hồ sơ
    REFUSAL = "refusal"  # Phiếu từ chối tiếp nhận giải quyết hồ sơ
    APOLOGY = "apology"  # Phiếu xin lỗi và hẹn lại ngày trả kết quả
    STOP_NOTICE = "stop-notice"  # dừng xử lý hồ sơ theo yêu cầu (title U)
    CONTROL_SHEET = "control-sheet"  # Phiếu kiểm soát quá trình giải quyết hồ sơ
    TRACKING_BOOK = "tracking-book"  # Sổ theo dõi hồ sơ (per desk, not per dossier)

    @property
    def template(self) -> str:
        return f"{self.value}.html.j2"


@dataclass(frozen=True)
class Edition:
    name: str  # as LIENTHONG_FORMS_EDITION spells it
    circular: str  # printed under each form's number
    numbers: dict[str, FormKind]

    @property
    def folder(self) -> str:
        """The sub-folder of a templates folder searched first for this edition's own layouts."""
        return "circular-" + self.name.replace("/", "-")

    def number_of(self, kind: FormKind) -> str | None:
        return next((number for number, k in self.numbers.items() if k == kind), None)


EDITIONS: dict[str, Edition] = {
    "03/2025": Edition("03/2025", "Thông tư số 03/2025/TT-VPCP", {
        "01": FormKind.RECEIPT, "02": FormKind.SUPPLEMENT_REQUEST, "03": FormKind.REFUSAL,
        "04": FormKind.APOLOGY, "05": FormKind.STOP_NOTICE, "06": FormKind.CONTROL_SHEET,
        "07": FormKind.TRACKING_BOOK}),
    "01/2018": Edition("01/2018", "Thông tư số 01/2018/TT-VPCP", {
        "01": FormKind.RECEIPT, "02": FormKind.SUPPLEMENT_REQUEST, "03": FormKind.REFUSAL,
        "04": FormKind.APOLOGY, "05": FormKind.CONTROL_SHEET, "06": FormKind.TRACKING_BOOK}),
}
DEFAULT_EDITION = "03/2025"


class UnknownForm(ValueError):
    """A form neither a number of the edition nor a kind's name."""


def resolve(edition: Edition, form: str) -> FormKind:
    """`01`…`07` (`1` too) in the edition's numbering, or a kind's name (`receipt`, …)."""
    text = form.strip().lower()
    number = text.zfill(2) if text.isdigit() and len(text) <= 2 else None
    if number is not None and number in edition.numbers:
        return edition.numbers[number]
    try:
        return FormKind(text)
    except ValueError:
        shown = repr(form[:40])
        raise UnknownForm(
            f"unknown form {shown}: the {edition.name} numbering has "
            + ", ".join(f"{n} {k.value}" for n, k in edition.numbers.items())
            + f"; a kind's name is accepted too ({', '.join(k.value for k in FormKind)})") from None
