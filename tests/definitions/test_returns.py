"""Return edges (`returns_to`), the result step (`returns_result`, and its default) and
the province-wide list checked against a folder's procedures (issue 14).

The refusals themselves, one per kind, are bad-corpus cases (tests/definitions/bad_corpus);
these tests cover what is accepted, the default, and where each check applies.
"""

from __future__ import annotations

from pathlib import Path

from definitions.loader import Catalog, load_catalog, load_procedure, load_procedures, validate_paths
from definitions.schema import Parallel, Sequence, Step
from tests.definitions.test_loader import VALID, assert_problem, problems_in, write

# Line numbers matter in the tests below.
BRANCHED = """\
code: "9.000002"
name: Thủ tục có trả lại bước trước
sector: S1
level: xa
version: 1
deadline: 20d
max_returns: 2
on_obligation: continue
max_obligation_requests: 1
steps:
  - id: tiep-nhan
    agency: bpmc-xa-{commune}
    deadline: 1d
  - id: xac-nhan
    agency: phong-a
    deadline: 2d
  - parallel:
      - id: y-kien
        agency: cap-tren
        deadline: 2d
      - sequence:
          - id: tham-dinh
            agency: phong-a
            deadline: 2d
          - id: kiem-tra
            agency: phong-a
            deadline: 2d
            returns_to: [tham-dinh]
  - id: phe-duyet
    agency: cap-tren
    deadline: 2d
    returns_to: [xac-nhan, tiep-nhan]
  - id: tra-ket-qua
    agency: bpmc-xa-{commune}
    deadline: 1d
"""


def line_with(text: str, words: str) -> int:
    """The 1-based line of ``text`` that holds ``words`` (once)."""
    [line] = [n for n, line in enumerate(text.splitlines(), start=1) if words in line]
    return line


def steps_by_id(snapshot_steps: list[object]) -> dict[str, Step]:
    found: dict[str, Step] = {}
    for node in snapshot_steps:
        if isinstance(node, Step):
            found[node.id] = node
        elif isinstance(node, Parallel):
            found |= steps_by_id(list(node.parallel))
        elif isinstance(node, Sequence):
            found |= steps_by_id(list(node.sequence))
    return found


def test_returns_to_earlier_steps_of_the_same_list_are_accepted(root: Path, catalog: Catalog) -> None:
    path, problems = problems_in(root, BRANCHED)
    assert problems == []
    procedure = load_procedure(path, catalog).procedure
    steps = steps_by_id(list(procedure.steps))
    assert steps["phe-duyet"].returns_to == ["xac-nhan", "tiep-nhan"]
    assert steps["kiem-tra"].returns_to == ["tham-dinh"]
    assert (procedure.max_returns, procedure.on_obligation, procedure.max_obligation_requests) == (2, "continue", 1)


def test_each_bad_target_is_its_own_problem_with_the_steps_it_may_name(root: Path) -> None:
    text = BRANCHED.replace("returns_to: [xac-nhan, tiep-nhan]", "returns_to: [y-kien, xac-nhan, kiem-tra]")
    _, problems = problems_in(root, text)
    assert len(problems) == 2, "\n".join(map(str, problems))
    line = line_with(text, "returns_to: [y-kien")
    assert_problem(problems[0], line, "steps[3].returns_to[0]", "'y-kien' (steps[2].parallel[0]) is inside the "
                   "parallel at steps[2]", "expected a step that comes earlier in the same list", "tiep-nhan, xac-nhan")
    assert_problem(problems[1], line, "steps[3].returns_to[2]", "'kiem-tra' (steps[2].parallel[1].sequence[1])")


def test_a_step_directly_in_a_parallel_has_no_earlier_step(root: Path) -> None:
    text = BRANCHED.replace("        agency: cap-tren\n        deadline: 2d\n",
                            "        agency: cap-tren\n        deadline: 2d\n        returns_to: [xac-nhan]\n")
    _, problems = problems_in(root, text)
    assert len(problems) == 1, "\n".join(map(str, problems))
    assert_problem(problems[0], line_with(text, "returns_to: [xac-nhan]"), "steps[2].parallel[0].returns_to[0]",
                   "'xac-nhan' (steps[1]) is not in the list this step is in (steps[2].parallel)",
                   "none: no step comes before steps[2].parallel[0] in its list (the branches of a parallel run "
                   "side by side)")


# --------------------------------------------------------------------------- the result step


def test_the_last_step_at_a_desk_returns_the_result_by_default(root: Path, catalog: Catalog) -> None:
    path, _ = problems_in(root, VALID)
    snapshot = load_procedure(path, catalog)
    assert snapshot.procedure.result_step == "tra-ket-qua"
    steps = steps_by_id(list(snapshot.procedure.steps))
    assert steps["tra-ket-qua"].returns_result is True and steps["tiep-nhan"].returns_result is None
    # The file is unchanged: the default is in the snapshot (what is deployed and started), not the text.
    assert "returns_result" not in path.read_text(encoding="utf-8")
    assert snapshot.model_dump(mode="json")["procedure"]["steps"][-1]["returns_result"] is True
    assert [s.procedure.result_step for s in load_procedures(catalog)] == ["tra-ket-qua"]


def test_no_default_when_the_last_step_is_not_surely_a_desk(root: Path, catalog: Catalog) -> None:
    last = "  - id: tra-ket-qua\n    agency: bpmc-xa-{commune}\n    deadline: 1d\n"
    assert VALID.endswith(last)
    cases = {
        "an office": last.replace("bpmc-xa-{commune}", "phong-a"),
        "a template that also matches offices": last.replace("bpmc-xa-{commune}", '"{office}"'),
        "opted out": last + "    returns_result: false\n",
        "a parallel": "  - parallel:\n" + "".join("    " + line + "\n" for line in last.splitlines()),
    }
    for n, (what, ending) in enumerate(cases.items()):
        path = write(root / "procedures", f"p{n}.yaml", VALID.removesuffix(last) + ending)
        assert load_procedure(path, catalog).procedure.result_step is None, what


def test_an_explicit_result_step_is_kept_and_stops_the_default(root: Path, catalog: Catalog) -> None:
    last = "  - id: tra-ket-qua\n    agency: bpmc-xa-{commune}\n    deadline: 1d\n"
    at_office = VALID.removesuffix(last) + last.replace("bpmc-xa-{commune}", "phong-a") + "    returns_result: true\n"
    path = write(root / "procedures", "office.yaml", at_office)
    assert load_procedure(path, catalog).procedure.result_step == "tra-ket-qua"
    # `returns_result: false` on an earlier step says nothing about the last: no default either.
    earlier = VALID.replace("    escalate_to: cap-tren\n", "    escalate_to: cap-tren\n    returns_result: false\n")
    path = write(root / "procedures", "earlier.yaml", earlier)
    assert load_procedure(path, catalog).procedure.result_step is None


def test_two_result_steps_are_refused_on_the_one_that_is_not_last(root: Path) -> None:
    text = VALID.replace("    escalate_to: cap-tren\n", "    escalate_to: cap-tren\n    returns_result: true\n") \
        + "    returns_result: true\n"
    _, problems = problems_in(root, text)
    assert len(problems) == 1, "\n".join(map(str, problems))
    assert_problem(problems[0], line_with(text, "escalate_to") + 1, "steps[1].returns_result", "not the procedure's last step",
                   "at most one step returns the result")


# --------------------------------------------------------------------------- the province-wide list


def listing(root: Path, *codes: str) -> Path:
    agencies = root / "agencies.yaml"
    text = agencies.read_text(encoding="utf-8")
    listed = "".join(f'  - "{code}"\n' for code in codes)
    agencies.write_text("province_wide_procedures:\n" + listed + text, encoding="utf-8")
    return agencies


def test_a_whole_folder_lists_only_its_own_procedures_province_wide(root: Path) -> None:
    write(root / "procedures", "valid.yaml", VALID)
    agencies = listing(root, "9.000001", "9.000010")
    count, problems = validate_paths([root])
    assert count == 3
    assert [str(p) for p in problems] == [
        f"{agencies}:3: province_wide_procedures[1]: '9.000010' is declared by no procedure file in "
        f"{root.resolve() / 'procedures'}; expected the code of a procedure there, e.g. 9.000001"]
    # Checked only when the whole folder is read: a file or the registry alone says nothing of it.
    assert validate_paths([agencies]) == (1, [])
    assert validate_paths([root / "procedures" / "valid.yaml"], root) == (1, [])
    assert load_catalog(root).province_wide == ["9.000001", "9.000010"]  # the catalog itself still loads


def test_the_list_is_not_judged_when_a_procedure_file_cannot_be_read(root: Path) -> None:
    """Its code is unknown: only the unreadable file is reported."""
    write(root / "procedures", "valid.yaml", VALID)
    (root / "procedures" / "broken.yaml").write_bytes(b'code: "9.000010"\nname: [unclosed\n')
    listing(root, "9.000010")
    _, problems = validate_paths([root])
    assert len(problems) == 1 and problems[0].path.endswith("broken.yaml"), problems
    (root / "procedures" / "broken.yaml").write_text(VALID.replace("9.000001", "9.000010"), encoding="utf-8")
    assert validate_paths([root])[1] == []
