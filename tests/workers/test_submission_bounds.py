"""Nothing is accepted that cannot run: submission refuses, with the bound it names,
values a workflow could not carry (numbers beyond exact JSON, text that is not
Unicode, receipts from too long ago, procedures too large for a workflow input)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from definitions.limits import MAX_JSON_INTEGER, MAX_PROCEDURE_JSON_BYTES
from services.submission import LOCAL_TZ, StoreRegistry, SubmissionError, local_today, prepare_dossier
from tests.workers.conftest import Cli
from tests.workers.test_submission_registry import DATA, LAND, add_version


@pytest.fixture
def lookup(cli: Cli) -> Iterator[StoreRegistry]:
    cli.ok("definitions", "deploy")
    with cli.sessions()() as session:
        yield StoreRegistry(session, cli.definitions)


def refusal(lookup: StoreRegistry, data: object = DATA, **kwargs: object) -> str:
    with pytest.raises(SubmissionError) as info:
        prepare_dossier(LAND, "HS-1", data, lookup, local_today(), **kwargs)  # type: ignore[arg-type]
    return str(info.value)


def test_numbers_beyond_exact_json_are_refused(lookup: StoreRegistry) -> None:
    assert prepare_dossier(LAND, "HS-1", {**DATA, "n": MAX_JSON_INTEGER}, lookup, local_today())
    message = refusal(lookup, {**DATA, "so_can_cuoc": MAX_JSON_INTEGER + 1})
    assert "so_can_cuoc" in message and "MAX_JSON_INTEGER" in message and "as text" in message
    assert "cannot be read" in refusal(lookup, '{"commune": "xa-tan-lap", "n": ' + "9" * 5000 + "}")


def test_text_that_is_not_unicode_is_refused(lookup: StoreRegistry) -> None:
    assert "not valid Unicode" in refusal(lookup, {**DATA, "ho_ten": "Nguy\ud800n"})
    assert "not valid Unicode" in refusal(lookup, {**DATA, "\udcff": "x"})
    assert "not valid Unicode" in refusal(lookup, '{"commune": "xa-tan-lap", "x": "\\ud800"}')


def test_a_receipt_from_too_long_ago_is_refused(lookup: StoreRegistry) -> None:
    now = datetime.now(LOCAL_TZ)
    message = refusal(lookup, received_at=now - timedelta(days=41), max_receipt_age=timedelta(days=40))
    assert "more than 40 days ago" in message and "LIENTHONG_RECEIPT_MAX_AGE_DAYS" in message
    assert "is in the future" in refusal(lookup, received_at=now + timedelta(hours=1))
    assert "more than" in refusal(lookup, received_at="0001-01-02T00:00:00+07:00")
    late = prepare_dossier(LAND, "HS-1", DATA, lookup, local_today(), received_at=now - timedelta(days=39),
                           max_receipt_age=timedelta(days=40))
    assert late.received_at == now - timedelta(days=39)


def test_the_version_is_the_one_in_effect_when_received(cli: Cli) -> None:
    today = local_today()
    add_version(cli.definitions, 2, today)
    cli.ok("definitions", "deploy")
    received = datetime.now(LOCAL_TZ) - timedelta(days=3)
    with cli.sessions()() as session:
        lookup = StoreRegistry(session, cli.definitions)
        assert prepare_dossier(LAND, "HS-1", DATA, lookup, today).snapshot.ref == f"{LAND}@2"
        assert prepare_dossier(LAND, "HS-1", DATA, lookup, today, received_at=received).snapshot.ref == f"{LAND}@1"


def test_a_procedure_too_large_for_a_workflow_input_is_refused(lookup: StoreRegistry, tmp_path: Path) -> None:
    name = "Thẩm định " + "x" * 1400
    steps = "".join(f"  - {{id: b{i}, name: \"{name}\", agency: vpdk-tinh, deadline: 0.1d}}\n" for i in range(99))
    draft = tmp_path / "lon.yaml"
    draft.write_text(f"""\
code: "9.LON"
name: Thủ tục rất lớn
sector: G13-TN01
level: tinh
version: 1
deadline: 20d
steps:
{steps}""", encoding="utf-8")
    with pytest.raises(SubmissionError) as info:
        prepare_dossier(str(draft), "HS-1", DATA, lookup, local_today())
    assert "MAX_PROCEDURE_JSON_BYTES" in str(info.value) and str(MAX_PROCEDURE_JSON_BYTES) in str(info.value)
