"""`lienthong documents render|book`: the printed forms of Circular 03/2025/TT-VPCP
(services/documents), as HTML that prints on A4 or as PDF."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

from config.settings import Settings
from services import documents
from services.documents import BookError, Document, FormTemplateError, NotApplicable, Options, UnknownForm
from services.dossiers import DossierClient, Refusal
from services.temporal import connect_or_refuse
from workers.commands_common import CliError, refused, store_sessions

FORMATS = ("html", "pdf")
NOT_APPLICABLE = 2  # exit code of a form that does not apply to the dossier (yet)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD (Vietnam time), got {text!r}") from None


def add_parsers(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    docs = commands.add_parser("documents", help="print a dossier's forms (Mẫu 01-06) and a desk's tracking book")
    action = docs.add_subparsers(required=True, metavar="ACTION", parser_class=parser_class)
    render = action.add_parser("render", help="one form of a dossier (receipt slip, supplement request, refusal, "
                                              "apology, stop notice, process-control sheet)")
    render.add_argument("dossier_id", metavar="ID")
    render.add_argument("--form", required=True, metavar="NUMBER|KIND",
                        help="01-06 in the numbering of LIENTHONG_FORMS_EDITION (03/2025: 01 receipt, 02 supplement "
                             "request, 03 refusal, 04 apology, 05 stop notice, 06 control sheet), or the kind's name")
    _output(render)
    render.set_defaults(run=_render)
    book = action.add_parser("book", help="a desk's tracking book (Mẫu 07; 06 in the 01/2018 numbering)")
    book.add_argument("--agency", required=True, metavar="DESK", help="the receiving desk's agency code")
    book.add_argument("--from", dest="first_day", required=True, type=_day, metavar="DATE",
                      help="first day of receipt, YYYY-MM-DD")
    book.add_argument("--to", dest="last_day", required=True, type=_day, metavar="DATE",
                      help="last day of receipt (included), YYYY-MM-DD")
    _output(book)
    book.set_defaults(run=_book)


def _output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="html", help="html (prints on A4) or pdf")
    parser.add_argument("--out", type=Path, metavar="FILE", help="write here (default: standard output)")


def _render(args: argparse.Namespace, settings: Settings) -> int:
    options = Options.from_settings(settings)
    try:
        kind = documents.form_kind(options, args.form)
    except UnknownForm as err:
        raise CliError(str(err), exit_code=2) from err

    async def make(dossiers: DossierClient) -> Document:
        found = await dossiers.load(args.dossier_id)
        return await documents.dossier_form(dossiers, found, kind, options)

    return _write(args, _produce(settings, make))


def _book(args: argparse.Namespace, settings: Settings) -> int:
    options = Options.from_settings(settings)

    async def make(dossiers: DossierClient) -> Document:
        return await documents.tracking_book(dossiers, args.agency, args.first_day, args.last_day, options)

    return _write(args, _produce(settings, make))


def _produce(settings: Settings, make: Callable[[DossierClient], Awaitable[Document]]) -> Document:
    """Run `make` with a dossier client on a store at head (the receipt book writes to it)."""

    async def run() -> Document:
        with store_sessions(settings) as sessions:
            client = await connect_or_refuse(settings)
            try:
                return await make(DossierClient(client, sessions, settings.task_queue))
            except Refusal as refusal:
                raise refused(refusal) from refusal
            except NotApplicable as err:
                raise CliError(str(err), exit_code=NOT_APPLICABLE) from err
            except (BookError, FormTemplateError) as err:
                raise CliError(str(err)) from err

    return asyncio.run(run())


def _write(args: argparse.Namespace, document: Document) -> int:
    if args.format == "pdf":
        try:
            body = document.pdf()
        except Exception as err:  # WeasyPrint's own errors (a font or CSS it cannot use)
            raise CliError(f"cannot print {document.name} as PDF: {type(err).__name__}: {err}") from err
        if args.out is None and sys.stdout.isatty():
            raise CliError("a PDF is not written to a terminal: give --out FILE, or redirect the output")
    else:
        body = document.html.encode("utf-8")
    for warning in document.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.out is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
        return 0
    try:
        args.out.write_bytes(body)
    except OSError as err:
        raise CliError(f"cannot write {args.out}: {err.strerror or err}") from err
    print(f"{document.name}: {args.format} written to {args.out} ({len(body)} bytes)", file=sys.stderr)
    return 0
