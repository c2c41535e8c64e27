"""The shipped catalogue: every procedure file in definitions/procedures is a complete,
cited, runnable procedure for every demo commune.

Parametrized over the files on disk, so a new procedure file is checked without
touching this test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from definitions.loader import Catalog, load_catalog, load_procedure, validate_paths
from definitions.schema import ProcedureSnapshot, Step, resolve_agency

SHIPPED = Path(__file__).resolve().parents[2] / "definitions"
FILES = sorted((SHIPPED / "procedures").glob("*.yaml"))
LEVELS = {"tinh", "xa", "trung-uong"}
# The sectors where late dossiers concentrate, and the chains the catalogue must cover.
REQUIRED_CODES = {
    "3.000722",  # liên thông khai sinh - thường trú - BHYT
    "2.002913",  # liên thông khai tử - xóa thường trú - tử tuất / mai táng
    "1.012756",  # đăng ký đất đai lần đầu
    "1.012796",  # giao đất, cho thuê đất (tax phase)
    "2.001610",  # đăng ký thành lập doanh nghiệp
    "1.001776",  # trợ cấp xã hội hằng tháng
    "2.000488",  # cấp Phiếu lý lịch tư pháp
    "1.009974",  # giấy phép xây dựng nhà ở riêng lẻ
}
# A legal citation: a law, decree, decision, circular or ordinance with its number.
LEGAL_BASIS = re.compile(
    r"(Luật [A-ZĐ]\w*|(Nghị định|Quyết định|Thông tư|Nghị quyết|Pháp lệnh)( liên tịch)? \d+/\d{4}/|Pháp lệnh )"
)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(SHIPPED)


def communes(catalog: Catalog) -> list[str]:
    """Demo communes: those with a one-stop desk `bpmc-xa-<commune>`."""
    return sorted(code.removeprefix("bpmc-xa-") for code in catalog.agencies if code.startswith("bpmc-xa-"))


def header(path: Path) -> str:
    lines = path.read_text(encoding="utf-8").splitlines()
    comment = []
    for line in lines:
        if not line.startswith("#"):
            break
        comment.append(line.lstrip("# "))
    return " ".join(comment)


def test_the_whole_catalogue_validates() -> None:
    count, problems = validate_paths([SHIPPED])
    assert [str(p) for p in problems] == []
    assert count == len(FILES) + 2  # the procedure files and both registries


def test_at_least_eight_procedures_covering_the_late_sectors(catalog: Catalog) -> None:
    assert len(FILES) >= 8
    codes = {load_procedure(path, catalog).procedure.code for path in FILES}
    assert codes >= REQUIRED_CODES


def test_there_are_at_least_three_demo_communes(catalog: Catalog) -> None:
    assert len(communes(catalog)) >= 3


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_procedure_is_complete_and_cited(catalog: Catalog, path: Path) -> None:
    procedure = load_procedure(path, catalog).procedure
    assert procedure.sector in catalog.sectors
    assert procedure.level in LEVELS
    assert procedure.effective_from is not None
    assert re.fullmatch(r"\d\.\d{6}", procedure.code), procedure.code  # the national code's shape
    text = header(path)
    assert LEGAL_BASIS.search(text), f"{path.name}: the top comment must cite the legal basis"
    # Every step belongs to an agency of a known level, and the file is received at a desk.
    first = next(procedure.iter_steps())
    assert first.id == "tiep-nhan"
    for commune in communes(catalog):
        assert catalog.agencies[resolve_agency(first.agency, {"commune": commune})].receives_dossiers


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_agency_template_resolves_for_every_demo_commune(catalog: Catalog, path: Path) -> None:
    snapshot: ProcedureSnapshot = load_procedure(path, catalog)
    for commune in communes(catalog):
        for step in snapshot.procedure.iter_steps():
            for template in filter(None, (step.agency, step.escalate_to)):
                code = resolve_agency(template, {"commune": commune})
                assert code in catalog.agencies, f"{snapshot.ref} {step.id}: {code} ({commune})"
                assert catalog.agencies[code].level in LEVELS


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_unverified_codes_say_so(path: Path) -> None:
    """Only 1.012756 was checked against the national database; every other file says
    its code is a placeholder or unverified (the project does not invent certainty)."""
    text = header(path).lower()
    if '"1.012756"' in path.read_text(encoding="utf-8"):
        return
    assert "placeholder" in text or "not verified" in text, path.name


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_the_last_step_returns_the_result_at_a_desk(catalog: Catalog, path: Path) -> None:
    """Issue 14: every shipped procedure ends with the desk's return step, so the dossier
    is 'processing finished' (portal 9) when the steps before it are done (the default of
    definitions/returns.py: no file needs to say returns_result)."""
    procedure = load_procedure(path, catalog).procedure
    last = procedure.steps[-1]
    assert isinstance(last, Step) and procedure.result_step == last.id
    for commune in communes(catalog):
        assert catalog.agencies[resolve_agency(last.agency, {"commune": commune})].receives_dossiers


# The land procedures wait for the applicant to pay (Decree 118/2025 Art. 24), and say
# which step asks.
OBLIGATIONS = {"1.012756": "xac-dinh-nghia-vu-tai-chinh", "1.012796": "xac-dinh-nghia-vu-tai-chinh"}


@pytest.mark.parametrize("code", sorted(OBLIGATIONS))
def test_land_procedures_pause_for_financial_obligations(catalog: Catalog, code: str) -> None:
    [path] = [p for p in FILES if f'code: "{code}"' in p.read_text(encoding="utf-8")]
    procedure = load_procedure(path, catalog).procedure
    assert procedure.on_obligation == "pause" and procedure.max_obligation_requests >= 1
    assert "on_obligation: pause" in path.read_text(encoding="utf-8")  # said, not only the default
    asking = OBLIGATIONS[code]
    assert asking in {s.id for s in procedure.iter_steps()}
    text = header(path)
    assert "Art. 24" in text and f"`{asking}` asks" in text.replace("\n", " ")


def test_returns_follow_the_approved_internal_procedures(catalog: Catalog) -> None:
    """The catalogue's back-edges (each file's comment says why)."""
    edges = {(load_procedure(p, catalog).procedure.code, s.id, tuple(s.returns_to))
             for p in FILES for s in load_procedure(p, catalog).procedure.iter_steps() if s.returns_to}
    assert edges == {
        ("1.009974", "phe-duyet", ("tham-dinh",)),  # building permit: the chairman's review → appraisal
        ("2.000488", "ky-phieu", ("lap-phieu",)),  # judicial record: signing → drafting
        ("1.001776", "quyet-dinh", ("xem-xet-ho-so",)),  # social allowance: the chairman → the review
        ("1.012756", "cap-nhat-ho-so-dia-chinh", ("tham-dinh",)),  # land records → the appraisal
    }
