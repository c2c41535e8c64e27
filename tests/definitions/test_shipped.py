"""The procedures, agencies and sectors shipped in definitions/ are valid and usable."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from definitions.calendar import load_calendar
from definitions.loader import Catalog, load_catalog, load_procedures, validate_paths
from definitions.schema import ProcedureSnapshot, resolve_agency

SHIPPED = Path(__file__).resolve().parents[2] / "definitions"
# Commune codes that have a full set of templated agencies in agencies.yaml.
COMMUNES = ("phuong-hoa-binh", "xa-tan-lap", "xa-an-phu")
EXPECTED_PROCEDURES = {"1.012756", "3.000722", "2.001610", "1.009974"}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(SHIPPED)


@pytest.fixture(scope="module")
def procedures(catalog: Catalog) -> list[ProcedureSnapshot]:
    return load_procedures(catalog)


def test_shipped_definitions_have_no_problems() -> None:
    count, problems = validate_paths([SHIPPED])
    assert [str(p) for p in problems] == []
    assert count == len(list((SHIPPED / "procedures").glob("*.yaml"))) + 2


def test_the_expected_procedures_are_shipped(procedures: list[ProcedureSnapshot]) -> None:
    assert {s.procedure.code for s in procedures} >= EXPECTED_PROCEDURES


@pytest.mark.parametrize("commune", COMMUNES)
def test_every_agency_template_resolves_for_each_commune(
    catalog: Catalog, procedures: list[ProcedureSnapshot], commune: str
) -> None:
    for snapshot in procedures:
        for step in snapshot.procedure.iter_steps():
            for template in filter(None, (step.agency, step.escalate_to)):
                code = resolve_agency(template, {"commune": commune})
                assert code in catalog.agencies, f"{snapshot.ref} {step.id}: {code}"


def test_first_step_is_a_one_stop_desk(catalog: Catalog, procedures: list[ProcedureSnapshot]) -> None:
    for snapshot in procedures:
        first = next(snapshot.procedure.iter_steps())
        code = resolve_agency(first.agency, {"commune": COMMUNES[0]})
        assert catalog.agencies[code].receives_dossiers, snapshot.ref


def test_every_commune_has_a_one_stop_desk(catalog: Catalog) -> None:
    for commune in COMMUNES:
        assert catalog.agencies[f"bpmc-xa-{commune}"].receives_dossiers


def test_levels_are_the_two_tier_government_and_vertical_agencies(catalog: Catalog) -> None:
    assert catalog.levels == {"tinh", "xa", "trung-uong"}


def test_only_the_procedures_whose_text_says_so_have_a_receipt_cutoff(procedures: list[ProcedureSnapshot]) -> None:
    """LEGAL.md, "Clock rules": the 15:00 cut-off is procedure-specific. Decree 63/2024
    Art. 7(2) sets it for the birth-registration bundle (3.000722); no shipped calendar
    sets one for every procedure."""
    cutoffs = {s.procedure.code: s.procedure.receipt_cutoff for s in procedures if s.procedure.receipt_cutoff}
    assert cutoffs == {"3.000722": time(15)}
    for path in sorted((SHIPPED / "calendars").glob("*.yaml")):
        assert load_calendar(path.stem, SHIPPED).snapshot(datetime(2026, 1, 1, tzinfo=UTC)).receipt_cutoff is None
