"""Typed configuration, from the environment (and a `.env` file if present)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_DEFINITIONS = Path(__file__).resolve().parent.parent / "definitions"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIENTHONG_", env_file=".env", extra="ignore")

    definitions: Path = Field(default=REPO_DEFINITIONS, description="folder with procedures/, agencies.yaml, ...")
    temporal_address: str = Field(
        default="localhost:7233", validation_alias=AliasChoices("TEMPORAL_ADDRESS", "LIENTHONG_TEMPORAL_ADDRESS")
    )
    temporal_namespace: str = Field(
        default="default", validation_alias=AliasChoices("TEMPORAL_NAMESPACE", "LIENTHONG_TEMPORAL_NAMESPACE")
    )
    database_url: str | None = Field(default=None, description="default: a SQLite file in .lienthong/")
    task_queue: str = "lienthong-dossiers"
    log_level: str = "INFO"
    log_json: bool = True
    workflow_sandbox: bool = Field(
        default=False, description="run workflow code in Temporal's sandbox (tests and replays always do)")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
