"""Reading docker-compose.yml as Docker Compose would, without Docker: the YAML (merge
keys included), `.env`-style variable files, and Compose's variable interpolation
(`${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `$$`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


class InterpolationError(ValueError):
    pass


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    return {key: value or "" for key, value in dotenv_values(path).items()}


def variables_used(text: str) -> set[str]:
    return {m.group("name") or m.group("bare") for m in _VARIABLE.finditer(text) if m.group(0) != "$$"}


def required_variables(text: str) -> set[str]:
    """Variables written `${VAR:?…}` / `${VAR?…}`: no default, start-up fails without them."""
    return {m.group("name") for m in _VARIABLE.finditer(text) if m.group("op") in (":?", "?")}


def interpolate(value: Any, env: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        present = name in env
        empty = present and env[name] == ""
        if op in (":?", "?") and (not present or (op == ":?" and empty)):
            raise InterpolationError(f"{name}: {arg or 'required'}")
        if op in (":-", "-") and (not present or (op == ":-" and empty)):
            return arg
        return env.get(name, "")

    return _VARIABLE.sub(replace, value)


def resolved(env: dict[str, str]) -> dict[str, Any]:
    """docker-compose.yml after interpolation with `env` (what `docker compose config` prints)."""
    return interpolate(load_yaml(COMPOSE_FILE), env)
