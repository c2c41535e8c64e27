"""Forms as HTML (Jinja2 templates an operator can edit) and as PDF (WeasyPrint).

Templates are looked up, first found wins (a ChoiceLoader):

1. the operator's folder (`LIENTHONG_FORMS_TEMPLATES`): `<folder>/circular-03-2025/` for
   the edition in use, then `<folder>/`;
2. the shipped ones (services/documents/templates/): the edition's sub-folder, then the
   folder itself.

So a province overrides one form by putting a file of the same name (`receipt.html.j2`,
`apology.html.j2`, …, `base.html.j2` for the page and its fonts) in its folder.
Autoescape is on: a dossier's data is text, never markup.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
)

from definitions.limits import MAX_TEMPLATE_BYTES
from services.documents.editions import Edition

SHIPPED = Path(__file__).resolve().parent / "templates"
LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")  # forms print the time on the desk's clock
_PRINTING = threading.Lock()


class FormTemplateError(Exception):
    """A template that cannot be read or rendered: the message names the file and line."""


class _BoundedLoader(FileSystemLoader):
    """A FileSystemLoader that refuses files above MAX_TEMPLATE_BYTES before reading them."""

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        for folder in self.searchpath:
            path = Path(folder) / template
            if path.is_file() and path.stat().st_size > MAX_TEMPLATE_BYTES:
                raise FormTemplateError(f"{path}: {path.stat().st_size} bytes; a template is at most "
                                        f"{MAX_TEMPLATE_BYTES} bytes (MAX_TEMPLATE_BYTES)")
        return super().get_source(environment, template)


def _local(at: datetime | None) -> datetime | None:
    return at.astimezone(LOCAL_TZ) if at is not None else None


def hm_date(at: datetime | None) -> str:
    """`08:30 05/01/2026`: hh:mm dd/mm/yyyy, Vietnam time."""
    local = _local(at)
    return local.strftime("%H:%M %d/%m/%Y") if local else ""


def _day_of(at: datetime | date) -> date:
    return at.astimezone(LOCAL_TZ).date() if isinstance(at, datetime) else at


def day(at: datetime | date | None) -> str:
    """`05/01/2026` (an instant in Vietnam time, or a date)."""
    return _day_of(at).strftime("%d/%m/%Y") if at is not None else ""


def long_date(at: datetime | date | None) -> str:
    """`ngày 05 tháng 01 năm 2026`."""
    if at is None:
        return ""
    local = _day_of(at)
    return f"ngày {local.day:02d} tháng {local.month:02d} năm {local.year}"


def clock(at: datetime | None) -> str:
    """`08 giờ 30 phút`."""
    local = _local(at)
    return f"{local.hour:02d} giờ {local.minute:02d} phút" if local else ""


def environment(edition: Edition, operator_folder: Path | None) -> Environment:
    loaders: list[BaseLoader] = []
    if operator_folder is not None:
        loaders.append(_BoundedLoader([operator_folder / edition.folder, operator_folder], encoding="utf-8"))
    loaders.append(FileSystemLoader([SHIPPED / edition.folder, SHIPPED], encoding="utf-8"))
    env = Environment(loader=ChoiceLoader(loaders), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(hm_date=hm_date, day=day, long_date=long_date, clock=clock)
    return env


def render_html(env: Environment, template: str, variables: dict[str, Any]) -> str:
    try:
        return env.get_template(template).render(variables)
    except TemplateNotFound as err:
        raise FormTemplateError(f"no template {err.name!r} in the operator's or the shipped templates") from err
    except TemplateSyntaxError as err:
        raise FormTemplateError(f"{err.filename or err.name}:{err.lineno}: {err.message}") from err
    except TemplateError as err:  # an undefined variable, a bad filter call, ...
        raise FormTemplateError(f"template {template}: {' '.join(str(err).split())}") from err


def _no_fetching(url: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    # A form is self-contained: nothing is fetched from files or the network while printing.
    raise ValueError(f"forms fetch nothing while printing ({url[:80]})")


def to_pdf(html: str) -> bytes:
    """The HTML printed by WeasyPrint (A4 from the templates' @page; fonts from fontconfig)."""
    import weasyprint  # heavy (Pango through cffi): loaded when a PDF is asked for

    with _PRINTING:  # one at a time: Pango and fontconfig are not safe to share between threads
        pdf = weasyprint.HTML(string=html, url_fetcher=_no_fetching).write_pdf()
    assert pdf is not None
    return bytes(pdf)
