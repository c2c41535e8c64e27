"""The bad-input corpus (tests/definitions/bad_corpus/): every malformed procedure file
is refused by `lienthong definitions validate` with `PATH:LINE: field: message`, and
by `lienthong definitions deploy`, which then leaves the registry exactly as it was.

The corpus is generated (`python -m tests.definitions.bad_corpus.generate`); the
committed files must equal what the generator writes. A coverage guard fails when
a check of the loader or a pydantic error kind it explains has no corpus file.
"""

from __future__ import annotations

import ast
import inspect
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import ValidationError
from ruamel.yaml import YAML
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from definitions import loader, procedure_checks, references, registries, shape, yaml_source
from definitions.schema import (
    Agency,
    AgencyRegistry,
    Condition,
    Parallel,
    Procedure,
    Receives,
    SectorRegistry,
    Sequence,
    Step,
)
from store.db import make_engine
from store.migrate import upgrade
from store.models import Base, DefinitionRow
from tests.definitions.bad_corpus import generate

CORPUS = generate.HERE
CATALOG = generate.CATALOG
LIENTHONG = Path(sys.executable).parent / "lienthong"
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Expected:
    path: Path
    rule: str
    line: int
    field: str | None
    fragment: str

    def matches(self, printed: str) -> bool:
        head = f"{self.path}:{self.line}: " + (f"{self.field}: " if self.field else "")
        return printed.startswith(head) and self.fragment in printed


def expected(path: Path) -> Expected:
    head = path.read_bytes().split(b"\n", generate.HEADER_LINES)[: generate.HEADER_LINES]
    lines = [line.decode("utf-8") for line in head]
    rule = lines[0].rsplit("(rule: ", 1)[1].rstrip(")")
    found = generate.EXPECT.match(lines[2])
    assert found, f"{path.name}: no `# Expect:` line in its header"
    field = None if found[2] == "-" else json.loads(found[2])
    return Expected(path, rule, int(found[1]), field, json.loads(found[3]))


CASES = generate.corpus_files()
REGISTRY_FOLDERS = generate.registry_folders()


def broken_registry(folder: Path) -> Path:
    """The registry file of a registry case that carries the header (the other is valid)."""
    [path] = [p for p in sorted(folder.glob("*.yaml")) if p.read_bytes().startswith(b"# Bad corpus case")]
    return path


# --------------------------------------------------------------------------- the corpus is what the generator writes


def test_the_committed_corpus_is_what_the_generator_writes() -> None:
    wanted = generate.render()
    on_disk = {p.name for p in CASES}
    assert on_disk == {name for name in wanted if "/" not in name}, (
        "corpus files differ from the generator: run `python -m tests.definitions.bad_corpus.generate`")
    for relative, content in wanted.items():
        assert (CORPUS / relative).read_bytes() == content, (
            f"{relative} differs from the generator: run `python -m tests.definitions.bad_corpus.generate`")


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 50
    assert len(CASES) == len(generate.CASES)
    assert len(REGISTRY_FOLDERS) == len(generate.REGISTRY_CASES)
    on_disk = {str(p.relative_to(CORPUS)) for folder in REGISTRY_FOLDERS for p in folder.iterdir()}
    assert on_disk == {name for name in generate.render() if name.startswith("registries/")}


# --------------------------------------------------------------------------- running the CLI in this process
# (the `cli` fixture: tests/definitions/conftest.py)




def test_the_base_procedure_and_its_catalog_are_valid(cli) -> None:
    result = cli("definitions", "validate", str(CATALOG))
    assert result.code == 0, result.out + result.err
    assert result.out.strip() == "3 files valid"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_validate_refuses_with_path_line_field_and_message(cli, path: Path) -> None:
    want = expected(path)
    result = cli("definitions", "validate", str(path))
    assert result.code == 1, result.out
    printed = result.out.strip().splitlines()
    assert len(printed) == 1, f"one defect, one problem line expected:\n{result.out}"
    assert want.matches(printed[0]), f"expected {want}\ngot       {printed[0]}"
    assert "\n" not in printed[0] and "Traceback" not in result.out + result.err
    assert result.err.strip() == "1 problem(s) in 1 file(s)"


# --------------------------------------------------------------------------- deploy refuses and changes nothing


def row_counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return {table.name: session.scalar(select(func.count()).select_from(table)) or 0
                    for table in Base.metadata.sorted_tables}
    finally:
        engine.dispose()


def deployed(url: str) -> list[tuple[str, str]]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return [(row.ref, row.content_hash) for row in session.scalars(select(DefinitionRow))]
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def registry_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database where the catalog (base procedure, agencies, sectors)
    is deployed: a refused deploy must leave these rows as they are."""
    path = tmp_path_factory.mktemp("registry") / "template.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    from store.db import make_session_factory
    from workers.commands_registry import deploy_paths

    engine = make_engine(url)
    try:
        report = deploy_paths(make_session_factory(engine), [CATALOG], CATALOG, "tests")
    finally:
        engine.dispose()
    assert report.summary() == "definitions: 1 deployed, 0 unchanged"
    return path


@pytest.fixture
def registry_url(registry_template: Path, tmp_path: Path) -> str:
    copy = tmp_path / "lienthong.db"
    shutil.copy(registry_template, copy)
    return f"sqlite:///{copy}"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_deploy_refuses_and_leaves_the_registry_unchanged(cli, registry_url: str, path: Path) -> None:
    want = expected(path)
    counts, rows = row_counts(registry_url), deployed(registry_url)
    assert counts["definitions"] == 1 and counts["agencies"] > 0
    result = cli("definitions", "deploy", str(path), "--by", "tests", database_url=registry_url)
    assert result.code == 1, result.out
    assert any(want.matches(line) for line in result.out.splitlines()), result.out
    assert result.err.strip() == "1 problem(s) in 1 file(s); nothing deployed"
    assert row_counts(registry_url) == counts
    assert deployed(registry_url) == rows


@pytest.mark.parametrize("folder", REGISTRY_FOLDERS, ids=[p.name for p in REGISTRY_FOLDERS])
def test_a_broken_registry_is_refused_and_deploys_nothing(cli, registry_url: str, folder: Path) -> None:
    """agencies.yaml / sectors.yaml with one defect: validate names it; deploying the
    folder syncs no agency or sector (and deploys no procedure)."""
    want = expected(broken_registry(folder))
    result = cli("definitions", "validate", str(folder), definitions=folder)
    assert result.code == 1, result.out
    printed = result.out.strip().splitlines()
    assert len(printed) == 1 and want.matches(printed[0]), f"expected {want}\ngot {result.out}"
    assert result.err.strip() == "1 problem(s) in 2 file(s)"

    counts, rows = row_counts(registry_url), deployed(registry_url)
    result = cli("definitions", "deploy", str(folder), database_url=registry_url, definitions=folder)
    assert result.code == 1
    assert [line for line in result.out.splitlines() if want.matches(line)], result.out
    assert result.err.strip() == "1 problem(s) in 2 file(s); nothing deployed"
    assert row_counts(registry_url) == counts and deployed(registry_url) == rows


# --------------------------------------------------------------------------- the real console script


def test_the_console_script_reports_every_corpus_file_at_once(tmp_path: Path) -> None:
    """One `lienthong definitions validate` over the whole corpus (the real entry point,
    `main()` with its os._exit): one problem line per file, in the given order."""
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("LIENTHONG_", "TEMPORAL_"))}
    env |= {"LIENTHONG_DEFINITIONS": str(CATALOG), "LIENTHONG_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    result = subprocess.run([str(LIENTHONG), "definitions", "validate", *map(str, CASES)], capture_output=True,
                            text=True, env=env, cwd=REPO, timeout=120, check=False)
    assert result.returncode == 1
    printed = result.stdout.splitlines()
    assert len(printed) == len(CASES), result.stdout
    for path, line in zip(CASES, printed):
        want = expected(path)
        assert want.matches(line), f"expected {want}\ngot       {line}"
    assert result.stderr == f"{len(CASES)} problem(s) in {len(CASES)} file(s)\n"


# --------------------------------------------------------------------------- folders: all or nothing


def definitions_copy(target: Path) -> Path:
    shutil.copytree(CATALOG, target)
    second = generate.BASE.replace('code: "9.900001"', 'code: "9.900002"')
    (target / "procedures" / "second.yaml").write_text(second, encoding="utf-8")
    return target


@pytest.mark.parametrize("bad", [CASES[0], next(p for p in CASES if "unknown-agency" in p.name), CASES[-1]],
                         ids=lambda p: p.stem)
def test_a_folder_with_one_bad_file_deploys_nothing(cli, tmp_path: Path, bad: Path) -> None:
    folder = definitions_copy(tmp_path / "definitions")
    shutil.copy(bad, folder / "procedures" / bad.name)
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(url)
    empty = row_counts(url)
    result = cli("definitions", "deploy", str(folder), database_url=url, definitions=folder)
    assert result.code == 1, result.out
    placed = expected(bad)
    moved = Expected(folder / "procedures" / bad.name, placed.rule, placed.line, placed.field, placed.fragment)
    assert [line for line in result.out.splitlines()] and all(
        line.startswith(str(folder / "procedures" / bad.name)) for line in result.out.splitlines()), result.out
    assert any(moved.matches(line) for line in result.out.splitlines()), result.out
    assert result.err.strip().endswith("nothing deployed")
    assert row_counts(url) == empty  # not even the agencies and sectors

    (folder / "procedures" / bad.name).unlink()
    result = cli("definitions", "deploy", str(folder), database_url=url, definitions=folder)
    assert result.code == 0, result.err
    assert result.out.strip().endswith("definitions: 2 deployed, 0 unchanged")


def test_a_version_conflict_on_a_later_file_rolls_back_the_earlier_ones(cli, tmp_path: Path,
                                                                        registry_url: str) -> None:
    """Valid files, but base.yaml changed under its deployed 9.900001@1: the new
    9.900002@1 (read first, second.yaml sorts after base.yaml) is not kept either."""
    folder = definitions_copy(tmp_path / "definitions")
    base = folder / "procedures" / "base.yaml"
    base.write_text(base.read_text(encoding="utf-8").replace("name: Tiếp nhận hồ sơ", "name: Tiếp nhận"),
                    encoding="utf-8")
    (folder / "procedures" / "second.yaml").rename(folder / "procedures" / "a-second.yaml")
    counts, rows = row_counts(registry_url), deployed(registry_url)
    result = cli("definitions", "deploy", str(folder), database_url=registry_url, definitions=folder)
    assert result.code == 1
    assert "9.900001@1 is already deployed with different content" in result.err
    assert result.err.strip().endswith("nothing deployed")
    assert row_counts(registry_url) == counts and deployed(registry_url) == rows


def test_the_same_code_and_version_in_two_files_of_a_folder(cli, tmp_path: Path) -> None:
    folder = definitions_copy(tmp_path / "definitions")
    twin = folder / "procedures" / "twin.yaml"
    twin.write_text("# the same code@version as base.yaml\n" + generate.BASE, encoding="utf-8")
    result = cli("definitions", "validate", str(folder), definitions=folder)
    assert result.code == 1
    assert result.out.strip() == (f"{twin}:2: code: 9.900001@1 is already declared in {folder / 'procedures' / 'base.yaml'}; "
                                  "expected a new version number")


def test_a_missing_path_is_refused(cli, tmp_path: Path) -> None:
    missing = tmp_path / "khong-co.yaml"
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(url)
    for command in ("validate", "deploy"):
        result = cli("definitions", command, str(missing), database_url=url)
        assert result.code == 1
        assert result.out.strip() == f"{missing}:1: no such file or folder"
    assert sum(row_counts(url).values()) == 0


# --------------------------------------------------------------------------- coverage guard

# Every rule the loader and the schema enforce on a procedure file, by the name the
# corpus headers use (`rule: ...`). Read from the loader's modules (definitions/loader.py
# lists them) and schema.py:
RULES = {
    # _read_yaml: what the YAML parser refuses
    "yaml-syntax", "yaml-duplicate-key", "yaml-template-in-flow", "yaml-invalid-date", "not-utf8",
    "yaml-too-deep", "yaml-too-large", "yaml-too-many-aliases",  # yaml_too_big, before the tree is built
    # _check_procedure: the document is no mapping
    "not-a-mapping",
    # _validate_shape (pydantic, explained by _describe / _describe_value / _describe_unknown_key)
    "missing-key", "unknown-key", "bad-type", "empty-value", "empty-list", "bad-code", "bad-version",
    "bad-effective-from", "bad-on-supplement", "bad-duration", "bad-steps-shape", "bad-step-id",
    "bad-when", "bad-when-operator", "bad-when-value", "bad-max-extensions", "bad-max-supplement-requests",
    "bad-receipt-cutoff",
    # the meaning checks called by _check_procedure
    "duplicate-step-id", "unknown-sector", "unknown-level", "unknown-calendar", "broken-calendar",
    "unknown-agency", "unknown-agency-template", "unknown-escalate-to", "deadline-overrun",
    "too-many-steps", "too-deep",  # definitions/limits.py MAX_STEPS, MAX_NESTING
    # issue 14: the shapes of on_obligation, max_obligation_requests, max_returns, and _return_problems
    "bad-on-obligation", "bad-max-obligation-requests", "bad-max-returns",
    "return-to-unknown-step", "return-to-itself", "return-to-later-step", "return-into-block",
    "return-to-other-branch", "return-out-of-list", "misplaced-result-step",
}
# Every rule _read_registry enforces on agencies.yaml and sectors.yaml.
REGISTRY_RULES = {
    "registry-yaml-syntax",  # _read_yaml
    "registry-not-a-mapping",  # the document is no mapping
    "registry-bad-shape", "registry-missing-key", "registry-unknown-key", "registry-bad-type",  # _validate_shape
    "registry-duplicate-code",  # _duplicate_codes
    "registry-templated-code",  # _templated_agency_codes
    "registry-bad-scope",  # Agency's model validator: a desk's `receives:` (issue 13 §3)
    "registry-unknown-receiving-level", "registry-province-wide-without-list",  # _receiving_scopes
    "registry-bad-webhook",  # Agency's webhook validator: an http(s) URL, not link-local (issue 13)
    "registry-province-wide-without-procedure",  # check_plan, for a whole folder (issue 14)
}
# Each meaning check `_check_procedure` runs, and the rules its problems belong to.
MEANING_CHECKS = {
    "_duplicate_step_ids": {"duplicate-step-id"},
    "_too_many_steps": {"too-many-steps"},
    "_too_deeply_nested": {"too-deep"},
    "_unknown_references": {"unknown-sector", "unknown-level", "unknown-calendar", "broken-calendar",
                            "unknown-agency", "unknown-agency-template", "unknown-escalate-to"},
    "_deadline_overruns": {"deadline-overrun"},
    "_return_problems": {"return-to-unknown-step", "return-to-itself", "return-to-later-step", "return-into-block",
                         "return-to-other-branch", "return-out-of-list", "misplaced-result-step"},
    "_validate_shape": set(),  # the pydantic kinds, guarded below
}
# Pydantic error kinds `_describe_value` explains that no procedure file can produce.
KINDS_NOT_FROM_PROCEDURES = {
    "model_attributes_type": "raised for non-dict objects; YAML gives dicts",
    "dict_type": "no dict-typed field in a procedure",
    "datetime_": "no datetime field; dates are date_*",
}


def test_every_rule_has_a_corpus_file() -> None:
    covered = {expected(path).rule for path in CASES}
    assert RULES <= covered, f"rules without a corpus file: {sorted(RULES - covered)}"
    assert covered <= RULES, f"corpus rules not listed in RULES: {sorted(covered - RULES)}"
    registry_covered = {expected(broken_registry(folder)).rule for folder in REGISTRY_FOLDERS}
    assert registry_covered == REGISTRY_RULES, sorted(registry_covered ^ REGISTRY_RULES)


def test_every_registry_check_of_the_loader_is_covered() -> None:
    """A new check in `_read_registry` must get a REGISTRY_RULES entry and a registry case."""
    tree = ast.parse(inspect.getsource(registries._read_registry))
    called = {node.func.id for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("_")}
    assert called == {"_read_yaml", "_validate_shape", "_valid_entries", "_duplicate_codes",
                      "_templated_agency_codes", "_receiving_scopes", "_unique"}, sorted(called)
    # Checked across files, when a whole folder is read: registry-province-wide-without-procedure.
    assert "_unlisted_codes(" in inspect.getsource(loader.check_plan)


def test_every_field_of_the_registry_schema_has_a_corpus_folder() -> None:
    """Each key agencies.yaml may hold (an agency's, a desk's scope's, the file's own)
    is the field of at least one registry corpus problem, or of none for the keys every
    entry has and the base itself exercises (code, name)."""
    keys = set()
    for model in (Agency, Receives, AgencyRegistry):
        keys |= {f.alias or name for name, f in model.model_fields.items()}
    keys -= {"code", "name", "webhook"}  # duplicate/templated/missing-name cover code and name; webhook: issue 12
    fields = {expected(broken_registry(folder)).field for folder in REGISTRY_FOLDERS}
    covered = {part.split("[")[0] for field in fields if field for part in field.split(".")}
    assert keys <= covered, f"registry keys without a corpus problem: {sorted(keys - covered)}"


def test_every_meaning_check_of_the_loader_is_mapped_to_rules() -> None:
    """A new `problems += _check(...)` in `_check_procedure` must be added here (and to the corpus)."""
    tree = ast.parse(inspect.getsource(procedure_checks._check_procedure))
    called = {node.func.id for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("_")
              and node.func.id not in ("_read_yaml", "_Result", "_unique")}
    assert called == set(MEANING_CHECKS), f"checks in _check_procedure: {sorted(called)}"
    for check, rules in MEANING_CHECKS.items():
        assert rules <= RULES, check
    # _calendar_problems is reached through _unknown_references
    assert "_calendar_problems" in inspect.getsource(references._unknown_references)
    # the YAML bounds (yaml-too-deep, yaml-too-large) are checked while reading
    assert "yaml_too_big" in inspect.getsource(yaml_source._read_yaml)


def test_every_field_of_the_schema_has_a_corpus_file() -> None:
    """Each key a procedure may hold is the field of at least one corpus problem."""
    keys = set()
    for model in (Procedure, Step, Parallel, Sequence):
        keys |= {f.alias or name for name, f in model.model_fields.items()}
    keys |= {"field", "in", "gt"}  # Condition: its field and the operators' two value shapes
    covered = {str(e.field).rsplit(".", 1)[-1].split("[")[0] for e in map(expected, CASES) if e.field}
    assert keys <= covered, f"keys without a corpus problem: {sorted(keys - covered)}"
    assert set(Condition.model_fields) >= {"field", "in_", "gt"}


def _kinds_explained() -> set[str]:
    """The string literals `_describe_value` compares `kind` with."""
    tree = ast.parse(inspect.getsource(shape._describe_value))
    kinds = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == "kind":
            for right in node.comparators:
                kinds |= {c.value for c in ast.walk(right) if isinstance(c, ast.Constant) and isinstance(c.value, str)}
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "startswith"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "kind"):
            kinds |= {c.value for c in ast.walk(node.args[0]) if isinstance(c, ast.Constant)}
    return kinds


def test_every_pydantic_error_kind_the_loader_explains_is_produced_by_the_corpus() -> None:
    produced: set[str] = set()
    for path in CASES:
        try:
            data = YAML(typ="safe").load(path.read_bytes().decode("utf-8"))
        except Exception:  # syntax, encoding and invalid-date cases: no tree to validate
            continue
        try:
            Procedure.model_validate(data)
        except ValidationError as err:
            produced |= {e["type"] for e in err.errors()}
    for folder in REGISTRY_FOLDERS:
        path = broken_registry(folder)
        try:
            data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
        except Exception:
            continue
        try:
            (AgencyRegistry if path.name == "agencies.yaml" else SectorRegistry).model_validate(data)
        except ValidationError as err:
            produced |= {e["type"] for e in err.errors()}
    explained = _kinds_explained()
    assert len(explained) > 15, explained  # the AST walk found the comparisons
    missing = {kind for kind in explained
               if not any(p.startswith(kind) for p in produced)}
    assert missing <= set(KINDS_NOT_FROM_PROCEDURES), f"explained kinds no corpus file produces: {sorted(missing)}"
    assert {"missing", "extra_forbidden", "value_error"} <= produced
