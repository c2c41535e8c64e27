"""The loader refuses bad definitions with one ``PATH:LINE: field: ...`` line per problem."""

from __future__ import annotations

import hashlib
import shutil
import textwrap
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from definitions.loader import (
    Catalog,
    DefinitionError,
    Problem,
    find_procedure,
    load_catalog,
    load_procedure,
    load_procedures,
    validate_paths,
)

REPO_DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"

AGENCIES = """\
agencies:
  - {code: bpmc-xa-xa-mot, name: Bộ phận một cửa xã Một, level: xa, receives_dossiers: true, receives: {levels: [xa]}}
  - {code: bpmc-xa-xa-hai, name: Bộ phận một cửa xã Hai, level: xa, receives_dossiers: true, receives: {levels: [xa]}}
  - {code: phong-a, name: Phòng A, level: tinh}
  - {code: cap-tren, name: Cấp trên, level: tinh}
"""

SECTORS = """\
sectors:
  - {code: S1, name: Lĩnh vực một}
  - {code: S2, name: Lĩnh vực hai}
"""

# Line numbers matter below: keep this text's layout in mind when editing it.
VALID = """\
code: "9.000001"
name: Thủ tục thử
sector: S1
level: xa
version: 1
deadline: 5d
steps:
  - id: tiep-nhan
    agency: bpmc-xa-{commune}
    deadline: 1d
  - id: xu-ly
    agency: phong-a
    deadline: 3d
    escalate_to: cap-tren
  - id: tra-ket-qua
    agency: bpmc-xa-{commune}
    deadline: 1d
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def small_folder(target: Path) -> Path:
    """A definitions folder with small registries and the real vn-gov calendar."""
    write(target, "agencies.yaml", AGENCIES)
    write(target, "sectors.yaml", SECTORS)
    (target / "calendars").mkdir()
    shutil.copy(REPO_DEFINITIONS / "calendars" / "vn-gov.yaml", target / "calendars" / "vn-gov.yaml")
    (target / "procedures").mkdir()
    return target


def problems_in(root: Path, text: str, name: str = "p.yaml") -> tuple[Path, list[Problem]]:
    path = write(root / "procedures", name, text)
    count, problems = validate_paths([path], root)
    assert count == 1
    return path, problems


def only_problem(root: Path, text: str) -> Problem:
    path, problems = problems_in(root, text)
    assert len(problems) == 1, "\n".join(map(str, problems))
    assert problems[0].path == str(path)
    return problems[0]


def assert_problem(problem: Problem, line: int, field: str, *words: str) -> None:
    assert problem.line == line, str(problem)
    assert problem.message.startswith(f"{field}:"), str(problem)
    for word in words:
        assert word in problem.message, str(problem)
    assert str(problem) == f"{problem.path}:{line}: {problem.message}"


# --------------------------------------------------------------------------- valid


def test_valid_file_has_no_problems_and_a_hashed_snapshot(root: Path, catalog: Catalog) -> None:
    path, problems = problems_in(root, VALID)
    assert problems == []
    snapshot = load_procedure(path, catalog)
    assert snapshot.ref == "9.000001@1"
    assert snapshot.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert snapshot.source == str(path)
    assert [s.id for s in snapshot.procedure.iter_steps()] == ["tiep-nhan", "xu-ly", "tra-ket-qua"]


def test_catalog_reads_registries_and_calendar_names(catalog: Catalog, root: Path) -> None:
    assert catalog.root == root
    assert set(catalog.agencies) == {"bpmc-xa-xa-mot", "bpmc-xa-xa-hai", "phong-a", "cap-tren"}
    assert set(catalog.sectors) == {"S1", "S2"}
    assert catalog.levels == {"xa", "tinh"}
    assert catalog.calendars == {"vn-gov", "continuous"}


def test_catalog_root_defaults_to_the_environment(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIENTHONG_DEFINITIONS", str(root))
    assert load_catalog().root == root
    write(root / "procedures", "p.yaml", VALID)
    assert validate_paths([root / "procedures" / "p.yaml"]) == (1, [])


# --------------------------------------------------------------------------- 1. yaml syntax


def test_yaml_syntax_error_reports_the_parser_line(root: Path) -> None:
    text = VALID.replace("  - id: xu-ly\n", "  - id: xu-ly\n    agency: [phong-a\n", 1)
    problem = only_problem(root, text)
    assert problem.line == 13
    assert problem.message.startswith("YAML syntax error:")


def test_duplicate_yaml_key_is_a_syntax_error_on_the_second_key(root: Path) -> None:
    problem = only_problem(root, VALID.replace("version: 1\n", "version: 1\nversion: 2\n"))
    assert problem.line == 6
    assert "duplicate key" in problem.message


def test_template_in_a_flow_mapping_gets_a_quoting_hint(root: Path) -> None:
    text = VALID.replace("  - id: tra-ket-qua\n    agency: bpmc-xa-{commune}\n", "  - {id: tra-ket-qua, agency: bpmc-xa-{commune},\n")
    problem = only_problem(root, text)
    assert problem.line == 15
    assert 'quote values with braces, e.g. agency: "bpmc-xa-{commune}"' in problem.message


# --------------------------------------------------------------------------- 2. missing key


def test_missing_top_level_key_points_at_the_mapping(root: Path) -> None:
    problem = only_problem(root, VALID.replace('code: "9.000001"\n', "# no code\n"))
    assert_problem(problem, 2, "code", "required key missing", '"1.012756"')


def test_missing_step_key_points_at_the_step(root: Path) -> None:
    text = VALID.replace("    agency: phong-a\n    deadline: 3d\n", "    agency: phong-a\n")
    problem = only_problem(root, text)
    assert_problem(problem, 11, "steps[1].deadline", "required key missing", "3d, 0.5d")


# --------------------------------------------------------------------------- 3. unknown key


def test_unknown_top_level_key(root: Path) -> None:
    problem = only_problem(root, VALID.replace("level: xa\n", "level: xa\ncategory: x\n"))
    assert_problem(problem, 5, "category", "unknown key 'category'", "expected one of code, name")


def test_unknown_step_key(root: Path) -> None:
    problem = only_problem(root, VALID.replace("    escalate_to: cap-tren\n", "    escalate: cap-tren\n"))
    assert_problem(problem, 14, "steps[1].escalate", "unknown key 'escalate'", "escalate_to")


# --------------------------------------------------------------------------- 4. bad type


def test_version_must_be_a_whole_number(root: Path) -> None:
    problem = only_problem(root, VALID.replace("version: 1\n", 'version: "one"\n'))
    assert_problem(problem, 5, "version", "'one' is not a whole number", ">= 1")


def test_unquoted_code_is_explained(root: Path) -> None:
    problem = only_problem(root, VALID.replace('code: "9.000001"', "code: 1.012750"))
    assert_problem(problem, 1, "code", "read as a number", 'quote it: code: "1.012750"')


def test_on_supplement_takes_pause_or_restart(root: Path) -> None:
    problem = only_problem(root, VALID.replace("level: xa\n", "level: xa\non_supplement: wait\n"))
    assert_problem(problem, 5, "on_supplement", "'wait'", "'pause' or 'restart'")


def test_a_step_must_be_a_mapping(root: Path) -> None:
    problem = only_problem(root, VALID.replace("  - id: tra-ket-qua\n", "  - tra-ket-qua\n  - id: tra-ket-qua\n"))
    assert_problem(problem, 15, "steps[2]", "expected a step")


# --------------------------------------------------------------------------- 5. bad duration


@pytest.mark.parametrize(
    ("old", "new", "line", "field"),
    [
        ("deadline: 5d\n", "deadline: 5 days\n", 6, "deadline"),
        ("    deadline: 3d\n", "    deadline: 3x\n", 13, "steps[1].deadline"),
        ("deadline: 5d\n", "deadline: 5d\nsupplement_deadline: 7\n", 7, "supplement_deadline"),
    ],
)
def test_bad_duration(root: Path, old: str, new: str, line: int, field: str) -> None:
    problem = only_problem(root, VALID.replace(old, new, 1))
    assert_problem(problem, line, field, "is not a duration", "expected a duration like 3d, 0.5d, 4h, 30m or 45s")


# --------------------------------------------------------------------------- 6. duplicate step id


def test_duplicate_step_id_is_reported_on_the_second(root: Path) -> None:
    problem = only_problem(root, VALID.replace("  - id: tra-ket-qua\n", "  - id: tiep-nhan\n"))
    assert_problem(problem, 15, "steps[2].id", "duplicate step id 'tiep-nhan'", "line 8")


def test_duplicate_step_id_inside_a_parallel(root: Path) -> None:
    text = VALID.replace(
        "  - id: tra-ket-qua\n",
        "  - parallel:\n      - {id: xu-ly, agency: phong-a, deadline: 1d}\n  - id: tra-ket-qua\n",
    )
    text = text.replace("deadline: 5d", "deadline: 6d")
    problem = only_problem(root, text)
    assert_problem(problem, 16, "steps[2].parallel[0].id", "duplicate step id 'xu-ly'")


# --------------------------------------------------------------------------- 7. unknown references


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "words"),
    [
        ("sector: S1", "sector: S3", 3, "sector", ("unknown sector 'S3'", "sectors.yaml")),
        ("level: xa", "level: huyen", 4, "level", ("unknown level 'huyen'", "tinh, xa")),
        ("version: 1\n", "version: 1\ncalendar: lunar\n", 6, "calendar", ("unknown calendar 'lunar'", "continuous, vn-gov")),
        ("agency: phong-a", "agency: phong-b", 12, "steps[1].agency", ("unknown agency 'phong-b'", "phong-a")),
        ("escalate_to: cap-tren", "escalate_to: cap-tre", 14, "steps[1].escalate_to", ("unknown agency 'cap-tre'", "cap-tren")),
    ],
)
def test_unknown_reference(root: Path, old: str, new: str, line: int, field: str, words: tuple[str, ...]) -> None:
    problem = only_problem(root, VALID.replace(old, new, 1))
    assert_problem(problem, line, field, *words)


def test_agency_template_needs_a_matching_code(root: Path) -> None:
    problem = only_problem(root, VALID.replace("agency: bpmc-xa-{commune}", "agency: bpmc-xaa-{commune}", 1))
    assert_problem(problem, 9, "steps[0].agency", "no agency in agencies.yaml matches 'bpmc-xaa-{commune}'", "bpmc-xa-xa-mot")


def test_agency_template_matching_some_code_is_fine(root: Path) -> None:
    text = VALID.replace("agency: phong-a", "agency: phong-{unit}")
    assert problems_in(root, text)[1] == []


def test_reference_checks_run_even_when_the_shape_is_wrong(root: Path) -> None:
    text = VALID.replace("version: 1", 'version: "one"').replace("sector: S1", "sector: S9")
    _, problems = problems_in(root, text)
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [(3, "sector"), (5, "version")]


def test_default_calendar_must_exist(root: Path) -> None:
    shutil.rmtree(root / "calendars")
    problem = only_problem(root, VALID)
    assert_problem(problem, 1, "calendar (default vn-gov)", "unknown calendar 'vn-gov'", "continuous")


def test_broken_calendar_file_is_reported_on_the_procedure(root: Path) -> None:
    write(root, "calendars/vn-gov.yaml", "name: vn-gov\ntimezone: Mars/Olympus\nworking_periods: []\n")
    text = VALID.replace("version: 1\n", "version: 1\ncalendar: vn-gov\n")
    problem = only_problem(root, text)
    assert_problem(problem, 6, "calendar", "calendar 'vn-gov' cannot be used", "calendars/vn-gov.yaml:2")
    assert "\n" not in problem.message


# --------------------------------------------------------------------------- 8. empty lists


@pytest.mark.parametrize(
    ("old", "new", "line", "field"),
    [
        ("steps:\n", "steps: []\nx_steps:\n", 7, "steps"),
        ("  - id: tra-ket-qua\n", "  - parallel: []\n  - id: tra-ket-qua\n", 15, "steps[2].parallel"),
        ("  - id: tra-ket-qua\n", "  - sequence: []\n  - id: tra-ket-qua\n", 15, "steps[2].sequence"),
    ],
)
def test_empty_lists_are_refused(root: Path, old: str, new: str, line: int, field: str) -> None:
    text = VALID.replace(old, new, 1)
    if field == "steps":
        text = text.split("x_steps:\n")[0]
    problem = only_problem(root, text)
    assert_problem(problem, line, field, "must not be empty")


# --------------------------------------------------------------------------- 9. when


def test_unknown_when_operator(root: Path) -> None:
    text = VALID.replace("    escalate_to: cap-tren\n", "    when: {field: x, between: [1, 2]}\n")
    problem = only_problem(root, text)
    assert_problem(
        problem,
        14,
        "steps[1].when",
        "unknown `when` operator 'between'; expected one of equals, in, gt, gte, lt, lte",
    )


@pytest.mark.parametrize(("when", "got"), [("{field: x}", "got none"), ("{field: x, gt: 1, lt: 9}", "got gt, lt")])
def test_when_takes_exactly_one_operator(root: Path, when: str, got: str) -> None:
    problem = only_problem(root, VALID.replace("    escalate_to: cap-tren\n", f"    when: {when}\n"))
    assert_problem(problem, 14, "steps[1].when", "exactly one of equals, in, gt, gte, lt, lte", got)


def test_when_step_is_valid(root: Path) -> None:
    text = VALID.replace("    escalate_to: cap-tren\n", "    when: {field: area_m2, in: [1, 2]}\n")
    assert problems_in(root, text)[1] == []


# --------------------------------------------------------------------------- 10. deadlines add up

PARALLEL = """\
code: "9.000002"
name: Thủ tục song song
sector: S1
level: xa
version: 1
deadline: 17d
steps:
  - {id: tiep-nhan, agency: "bpmc-xa-{commune}", deadline: 0.5d}
  - parallel:
      - {id: xac-dinh-thue, agency: phong-a, deadline: 3d, escalate_to: cap-tren}
      - sequence:
          - {id: tham-dinh, agency: phong-a, deadline: 12d}
          - {id: trinh-ky, agency: cap-tren, deadline: 5d, when: {field: area_m2, gt: 500}}
  - {id: tra-ket-qua, agency: "bpmc-xa-{commune}", deadline: 0.5d}
"""


def test_longest_path_longer_than_total_deadline(root: Path) -> None:
    problem = only_problem(root, PARALLEL)
    assert_problem(
        problem,
        6,
        "deadline",
        "steps take up to 18d along tiep-nhan → tham-dinh → trinh-ky → tra-ket-qua, longer than the total deadline 17d",
    )


def test_longest_path_takes_the_slowest_branch_only(root: Path) -> None:
    assert problems_in(root, PARALLEL.replace("deadline: 12d", "deadline: 11d"))[1] == []


def test_hours_count_in_the_calendars_working_day(root: Path) -> None:
    # 12 h is 1.5 working days of 8 h, but half a day of the continuous calendar.
    text = VALID.replace("    deadline: 1d\n", "    deadline: 1h\n").replace("deadline: 3d", "deadline: 10h")
    text = text.replace("deadline: 5d", "deadline: 1d")
    problem = only_problem(root, text)
    assert_problem(problem, 6, "deadline", "steps take up to 1.5d", "total deadline 1d")
    continuous = text.replace("version: 1\n", "version: 1\ncalendar: continuous\n")
    assert problems_in(root, continuous)[1] == []


# --------------------------------------------------------------------------- 11. registries


def test_registry_problems_have_their_own_path_and_line(root: Path) -> None:
    agencies = write(
        root,
        "agencies.yaml",
        AGENCIES + "  - {code: phong-a, name: Phòng A lần hai, level: tinh}\n  - {code: thieu-ten, level: xa}\n",
    )
    sectors = write(root, "sectors.yaml", SECTORS + "  - {code: S1, name: Trùng}\n")
    with pytest.raises(DefinitionError) as raised:
        load_catalog(root)
    lines = str(raised.value).splitlines()
    assert lines == [
        f"{agencies}:6: agencies[4].code: duplicate code 'phong-a', already defined on line 4; expected unique codes",
        f"{agencies}:7: agencies[5].name: required key missing; expected a name (text)",
        f"{sectors}:4: sectors[2].code: duplicate code 'S1', already defined on line 2; expected unique codes",
    ]
    count, problems = validate_paths([agencies, sectors])
    assert count == 2
    assert [str(p) for p in problems] == lines


def test_registry_unknown_key_and_templated_code(root: Path) -> None:
    agencies = write(root, "agencies.yaml", AGENCIES + "  - {code: 'x-{commune}', name: X, level: xa, phone: 1}\n")
    _, problems = validate_paths([agencies])
    assert sorted((p.line, p.message.split(":")[0]) for p in problems) == [(6, "agencies[4].code"), (6, "agencies[4].phone")]
    assert any("has braces; expected a concrete agency code" in p.message for p in problems)


# --------------------------------------------------------------------------- many files


def test_all_problems_of_a_file_are_reported(root: Path) -> None:
    text = VALID.replace("version: 1", "version: 0").replace("deadline: 3d", "deadline: 3").replace("phong-a", "phong-z")
    _, problems = problems_in(root, text)
    assert [p.line for p in problems] == [5, 12, 13]
    with pytest.raises(DefinitionError) as raised:
        load_procedure(root / "procedures" / "p.yaml", load_catalog(root))
    assert raised.value.problems == problems


def test_duplicate_code_and_version_is_reported_on_the_second_file(root: Path, catalog: Catalog) -> None:
    write(root / "procedures", "a.yaml", VALID)
    second = write(root / "procedures", "b.yaml", "# same code and version\n" + VALID)
    with pytest.raises(DefinitionError) as raised:
        load_procedures(catalog)
    [problem] = raised.value.problems
    assert_problem(problem, 2, "code", "9.000001@1 is already declared in", "a.yaml")
    assert problem.path == str(second)
    count, problems = validate_paths([root])
    assert count == 4  # two registries, two procedures
    assert problems == [problem]


def test_validate_paths_never_raises_and_counts_files(root: Path) -> None:
    write(root / "procedures", "good.yaml", VALID)
    (root / "procedures" / "binary.yaml").write_bytes(b"\xff\xfe\x00bad")
    write(root / "procedures", "list.yaml", "- just\n- a list\n")
    count, problems = validate_paths([root / "procedures", root / "missing.yaml"], root)
    assert count == 3
    assert [(Path(p.path).name, p.line) for p in problems] == [
        ("missing.yaml", 1),
        ("binary.yaml", 1),
        ("list.yaml", 1),
    ]


_LINE = st.sampled_from(
    ["", "- x", "steps: []", "  - parallel:", "  - {id: a}", "    when: {field: x}", "deadline: 3x", ": :", "  {", "version: []"]
) | st.text(alphabet="abc:-{}[] #'\"\n\t0123456789d", max_size=20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, VALID.count("\n")), replacement=_LINE)
def test_any_edit_gives_problems_with_lines_not_an_exception(root: Path, index: int, replacement: str) -> None:
    lines = VALID.splitlines()
    lines[index:index + 1] = [replacement]
    text = "\n".join(lines) + "\n"
    path, problems = problems_in(root, text)
    for problem in problems:
        assert problem.path == str(path)
        assert 1 <= problem.line <= text.count("\n") + 1, str(problem)
        assert "\n" not in problem.message


# --------------------------------------------------------------------------- find_procedure


def versioned(version: int, effective_from: str | None) -> str:
    text = VALID.replace("version: 1", f"version: {version}")
    if effective_from:
        text = text.replace("deadline: 5d", f"effective_from: {effective_from}\ndeadline: 5d")
    return text


def test_find_procedure_by_path_code_and_version(root: Path, catalog: Catalog) -> None:
    first = write(root / "procedures", "v1.yaml", versioned(1, "2025-07-01"))
    write(root / "procedures", "v2.yaml", versioned(2, "2027-01-01"))
    assert find_procedure(str(first), catalog, date(2030, 1, 1)).source == str(first)
    assert find_procedure("9.000001", catalog, date(2026, 6, 1)).procedure.version == 1
    assert find_procedure("9.000001", catalog, date(2027, 1, 1)).procedure.version == 2
    assert find_procedure("9.000001@2", catalog, date(2026, 6, 1)).procedure.version == 2


def test_find_procedure_explains_what_is_missing(root: Path, catalog: Catalog) -> None:
    write(root / "procedures", "v2.yaml", versioned(2, "2027-01-01"))
    with pytest.raises(LookupError, match=r"^unknown procedure 1\.2\.3: known codes are 9\.000001$"):
        find_procedure("1.2.3", catalog, date(2026, 1, 1))
    with pytest.raises(LookupError, match=r"^procedure 9\.000001 has no version in effect on 2026-01-01 \(v2 from 2027-01-01\)$"):
        find_procedure("9.000001", catalog, date(2026, 1, 1))
    with pytest.raises(LookupError, match=r"no version 3: known versions are 2"):
        find_procedure("9.000001@3", catalog, date(2026, 1, 1))
    with pytest.raises(LookupError, match="no procedure file"):
        find_procedure(str(root / "nope.yaml"), catalog, date(2026, 1, 1))


def test_version_without_effective_from_is_always_in_effect(root: Path, catalog: Catalog) -> None:
    write(root / "procedures", "v1.yaml", versioned(1, None))
    assert find_procedure("9.000001", catalog, date(2000, 1, 1)).procedure.version == 1
