"""Every form of every shipped procedure, for dossiers driven through the real workflow
on the time-skipping server: printed as PDF by WeasyPrint and read back (pypdf), the
applicant's name with its diacritics, the dossier code, the procedure's name and the
appointment are in the text. One dossier per procedure is received at its desk, asked
for a supplement, resubmitted, given a new appointment and withdrawn (forms 01, 02, 04,
05, 06 apply to it); another is submitted online and refused at the desk (form 03).
Then the desk's tracking book lists them, numbered."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import pypdf
import pytest
from sqlalchemy.orm import Session, sessionmaker

from definitions.calendar import load_calendar
from definitions.durations import parse_duration
from services import documents
from services.documents import Document, FormKind, NotApplicable, Options
from services.documents.editions import EDITIONS
from services.documents.render import LOCAL_TZ
from services.dossiers import DossierClient
from store import projection, receipt_book
from store.db import make_engine, make_session_factory
from store.migrate import upgrade
from tests.conftest import deploy_shipped
from tests.workers.test_cli_e2e_catalogue import desk_for
from tests.workflows.catalogue import complete_steps, expected_agencies, journey_data, shipped_files, shipped_snapshot
from tests.workflows.harness import complete, desk, extend, resubmit, running_worker, start_dossier, state, until
from workflows.payloads import DossierState, DossierStatus, StepStatus

FILES = shipped_files()
APPLICANT = {"name": "Trần Thị Ngọc Ánh", "address": "Số 12 đường Lê Lợi, phường Hưng Bình", "phone": "0912 345 678"}
OPTIONS = Options(EDITIONS["03/2025"], authority="UBND TỈNH NGHỆ AN", place="Nghệ An")


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sessionmaker[Session]]:
    """The worker's store: migrated, the shipped registries and procedures deployed."""
    url = f"sqlite:///{tmp_path_factory.mktemp('documents') / 'store.db'}"
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    deploy_shipped(factory)
    yield factory
    engine.dispose()


def flat(text: str) -> str:
    return " ".join(text.split())


def pdf_text(document: Document) -> str:
    reader = pypdf.PdfReader(io.BytesIO(document.pdf()))
    return flat(" ".join(page.extract_text() for page in reader.pages))


def shown(at) -> str:  # noqa: ANN001 - a datetime
    return at.astimezone(LOCAL_TZ).strftime("%d/%m/%Y")


async def stored(sessions: sessionmaker[Session], current: DossierState) -> None:
    """Until the store has every event the workflow recorded (writes follow the answers)."""
    for _ in range(200):
        with sessions() as session:
            if (projection.last_seq(session, current.dossier_id) or 0) >= current.last_event_seq:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the store never caught up with {current.dossier_id}")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
async def test_every_form_of_a_shipped_procedure_prints_its_dossier(time_skipping_env, sessions, path: Path) -> None:
    env = time_skipping_env
    snap = shipped_snapshot(path)
    procedure = snap.procedure
    data = journey_data(procedure) | {"applicant": APPLICANT, "sets": 1,
                                      "documents": [{"name": "Tờ khai theo mẫu", "kind": "original", "count": 1}]}
    agencies = expected_agencies(procedure, data)
    receiving = desk_for(procedure.level, data["commune"])
    # The first step an agency other than the desk works on for more than one working day: it asks
    # for a supplement, then gives a new appointment (at least one working day before its due).
    day = load_calendar(procedure.calendar).day_length
    deadlines = {step.id: parse_duration(step.deadline, day) for step in procedure.iter_steps()}
    target = next(step_id for step_id, agency in agencies.items()
                  if agency not in (None, receiving) and deadlines[step_id] > day)
    async with running_worker(env.client, sessions) as tq:
        dossiers = DossierClient(env.client, sessions, tq)
        handle = await start_dossier(env.client, tq, snap, data=data, received_by=receiving)
        await complete_steps(handle, agencies, hold=frozenset({target}), until_assigned=target)
        holder = agencies[target]
        assert holder is not None
        await complete(handle, target, holder, outcome="supplement", note="Bổ sung bản sao giấy tờ tùy thân")
        await resubmit(handle)
        current = await until(handle, lambda s: s.step(target).status == StepStatus.ASSIGNED, "resumed")
        step = current.step(target)
        assert step is not None and step.extendable_until is not None and step.due_at is not None
        assert await env.get_current_time() <= step.extendable_until  # more than a working day left
        # Half a working day after the due (the workflow moves it to that day's end).
        later = load_calendar(procedure.calendar).add(step.due_at, "0.5d")
        extended = await extend(handle, holder, later, "Chờ ý kiến của cơ quan phối hợp", step_id=target)
        new_appointment = extended.step(target).due_at  # type: ignore[union-attr]
        assert new_appointment is not None and new_appointment > step.due_at
        withdrawn = await desk(handle, "withdraw", receiving, note="Người nộp đề nghị rút hồ sơ để bổ sung sau")
        assert withdrawn.status == DossierStatus.WITHDRAWN

        online = await start_dossier(env.client, tq, snap, data=data, received_by=receiving, channel="online")
        await until(online, lambda s: s.status == DossierStatus.SUBMITTED, "submitted")
        refused = await desk(online, "refuse_receipt", receiving, note="Hồ sơ không thuộc phạm vi tiếp nhận")
        assert refused.status == DossierStatus.NOT_RECEIVED

        await stored(sessions, await state(handle))
        await stored(sessions, await state(online))
        found, refused_found = await dossiers.load(handle.id), await dossiers.load(online.id)
        printed = {kind: await documents.dossier_form(dossiers, found, kind, OPTIONS)
                   for kind in (FormKind.RECEIPT, FormKind.SUPPLEMENT_REQUEST, FormKind.APOLOGY,
                                FormKind.STOP_NOTICE, FormKind.CONTROL_SHEET)}
        printed[FormKind.REFUSAL] = await documents.dossier_form(dossiers, refused_found, FormKind.REFUSAL, OPTIONS)
        with pytest.raises(NotApplicable, match=f"form 03 .refusal. does not apply to dossier {handle.id}"):
            await documents.dossier_form(dossiers, found, FormKind.REFUSAL, OPTIONS)
        with pytest.raises(NotApplicable, match="it was not received"):
            await documents.dossier_form(dossiers, refused_found, FormKind.RECEIPT, OPTIONS)

        first_day = found.state.received_at.astimezone(LOCAL_TZ).date()
        book = await documents.tracking_book(dossiers, receiving, first_day, first_day, OPTIONS)

    final = found.state
    # Forms that carry an appointment: the slip and the sheet the legal one, the apology the new one.
    appointments = {FormKind.RECEIPT: final.original_due_at, FormKind.CONTROL_SHEET: final.original_due_at,
                    FormKind.APOLOGY: new_appointment}
    for kind, document in printed.items():
        assert document.warnings == [], (kind, document.warnings)
        text = pdf_text(document)
        dossier = refused_found.state if kind is FormKind.REFUSAL else final
        for expected in (APPLICANT["name"], dossier.dossier_id, flat(procedure.name), f"Mẫu số {document.number}"):
            assert expected in text, (path.stem, kind, expected, text[:3000])
        if kind in appointments:
            assert appointments[kind] is not None
            assert shown(appointments[kind]) in text, (path.stem, kind, text[:3000])
    assert "Bổ sung bản sao giấy tờ tùy thân" in pdf_text(printed[FormKind.SUPPLEMENT_REQUEST])
    assert "Hồ sơ không thuộc phạm vi tiếp nhận" in pdf_text(printed[FormKind.REFUSAL])
    assert "Chờ ý kiến của cơ quan phối hợp" in pdf_text(printed[FormKind.APOLOGY])
    assert "Người nộp đề nghị rút hồ sơ để bổ sung sau" in pdf_text(printed[FormKind.STOP_NOTICE])

    # The book has the received dossier (not the refused one), with its number as on the slip.
    book_text = pdf_text(book)
    packed = book_text.replace(" ", "")  # a code in a narrow column may wrap
    assert handle.id in packed and online.id not in packed and APPLICANT["name"] in book_text
    assert "SỔ THEO DÕI HỒ SƠ" in book_text and "Mẫu số 07" in book_text
    with sessions() as session:
        entry = receipt_book.entry_of(session, handle.id)
    assert entry is not None and entry.desk == receiving and entry.volume == first_day.year
    row = next(r for r in book.html.split("<tr>") if handle.id in r)
    assert f"{entry.volume} / {entry.number}" in row
    slip = printed[FormKind.RECEIPT].html
    assert f'Quyển số: <span class="value">{entry.volume}</span>' in slip
    assert f'Số thứ tự: <span class="value">{entry.number}</span>' in slip
