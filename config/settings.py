"""Typed configuration, from the environment (and a `.env` file if present).

This is the only module that reads the environment. `get_settings()` builds the
settings afresh on each call (cheap, and a changed environment is seen, as tests
and the CLI's in-process runs rely on); long-lived processes read them once at
start and pass them down."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, BeforeValidator, Field, HttpUrl, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

PACKAGE_DEFINITIONS = Path(__file__).resolve().parent.parent / "definitions"
SHARED_SECRET_VARIABLE = "LIENTHONG_WEBHOOK_SECRET"  # the `webhook_secret` field
AGENCY_SECRET_PREFIX = SHARED_SECRET_VARIABLE + "_"


def _port_or_off(value: Any) -> Any:
    """A metrics port: a number, or `off` (also `none`, `-`) for not served."""
    if isinstance(value, str) and value.strip().lower() in ("off", "none", "-", ""):
        return None
    return value


Port = Annotated[Annotated[int, Field(ge=0, le=65535)] | None, BeforeValidator(_port_or_off)]


def _empty_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


# An http(s) URL, or unset (an empty variable, as docker-compose.yml passes it, is unset).
OptionalURL = Annotated[HttpUrl | None, BeforeValidator(_empty_is_none)]


def agency_secret_variable(agency: str) -> str:
    """`LIENTHONG_WEBHOOK_SECRET_<AGENCY>`: the code upper-cased, `-` and `.` as `_`."""
    return AGENCY_SECRET_PREFIX + agency.upper().replace("-", "_").replace(".", "_")


class _AgencySecrets(PydanticBaseSettingsSource):
    """Per-agency webhook secrets: every `LIENTHONG_WEBHOOK_SECRET_<AGENCY>` variable,
    keyed by its variable name (one agency's secret is looked up by that name)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found = {name: value for name, value in os.environ.items()
                 if name.startswith(AGENCY_SECRET_PREFIX) and value}
        return {"agency_webhook_secrets": found} if found else {}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIENTHONG_", env_file=".env", extra="ignore")

    definitions: Path = Field(default=PACKAGE_DEFINITIONS, description="folder with procedures/, agencies.yaml, ...")
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
    debug: bool = Field(default=False, description="CLI: tracebacks instead of one-line errors")
    workflow_sandbox: bool = Field(
        default=False, description="run workflow code in Temporal's sandbox (tests and replays always do)")
    # How long ago a desk may say a dossier was received (paper receipts entered later,
    # dossiers migrated from an old system); no rule says, so a setting.
    receipt_max_age_days: int = Field(default=400, ge=0, le=3650)
    # Metrics endpoints; None (`off`) is not served.
    metrics_address: str = "0.0.0.0"
    worker_metrics_port: Port = 9465
    sdk_metrics_port: Port = 9466
    exporter_port: Port = 9464
    # The gateway's limits, enforced before any work (gateway/guard.py). A body is
    # refused (413) above this many bytes before it is read; the largest a route takes
    # is a submission with MAX_DATA_BYTES of data, which JSON escaping can triple.
    gateway_max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=64 * 1024 * 1024)
    # /public answers each client (IP address; an IPv6 /64) at most this many times a
    # minute on average, and at most `public_burst` at once (429 with Retry-After).
    public_rate_per_minute: int = Field(default=60, ge=1, le=100_000)
    public_burst: int = Field(default=20, ge=1, le=100_000)
    # Proxies whose X-Forwarded-For names the client (comma-separated addresses or
    # networks, `*` for any): the rate limit counts per client, not per proxy.
    gateway_trusted_proxies: str = "127.0.0.1,::1"
    # HMAC keys of the webhooks to agencies: one for all, or one per agency.
    webhook_secret: SecretStr | None = None
    # Applicants' data encrypted in Temporal (services/codec.py, README "Applicants' data").
    codec_keys: SecretStr | None = Field(
        default=None, description="AES-256 keys `ID:BASE64,ID:BASE64` (32 bytes each); all decrypt, one encrypts")
    codec_key_id: str | None = Field(default=None, description="the key that encrypts (default: the first listed)")
    codec_operators: SecretStr | None = Field(
        default=None, description="who may use the gateway's /codec endpoint: `NAME:SHA256_OF_TOKEN,...`")
    codec_ui_origins: str = Field(default="", description="origins of the Temporal UI allowed to call /codec (CORS)")
    # The National Public Service Portal (README "National Public Service Portal"): status
    # changes and the timeline go to this endpoint from the outbox; unset, nothing is
    # queued or sent.
    portal_url: OptionalURL = Field(default=None, description="the portal's sync endpoint (POST); unset: off")
    portal_token: SecretStr | None = Field(default=None, description="sent as `Authorization: Bearer <token>`")
    portal_batch_size: int = Field(default=50, ge=1, le=1000,
                                   description="changes claimed from the outbox at a time")
    portal_timeout_seconds: float = Field(default=10.0, gt=0, le=60,
                                          description="connect / read / write timeout of one POST")
    portal_poll_seconds: float = Field(default=2.0, gt=0, le=60,
                                       description="how often an idle sync looks for new changes")
    # Printed forms (services/documents; README "Documents"). The numbering is the province's
    # choice: Circular 03/2025/TT-VPCP's, or the 01/2018 one many provinces still print.
    forms_edition: Literal["03/2025", "01/2018"] = "03/2025"
    forms_templates: Path | None = Field(
        default=None, description="a folder of the province's own templates, used before the shipped ones")
    forms_authority: str = Field(default="", max_length=200,
                                 description="the header's upper line (cơ quan chủ quản), e.g. UBND TỈNH …")
    forms_place: str = Field(default="", max_length=100, description="the place before the date (địa danh)")
    # The Biểu 06 report (services/report.py; README "The Biểu 06 report"). Day boundaries
    # of a period are local midnights in this zone.
    province_timezone: str = Field(default="Asia/Ho_Chi_Minh", description="IANA time zone of the province")
    # Two readings of Decision 766/Biểu 06 that implementations differ on (LEGAL.md): neither
    # is law we could confirm, so each is a choice, by default the workflow's own verdicts.
    report_paused_within_time: bool = Field(
        default=False, description="count dossiers waiting for the applicant (supplement, financial obligation) "
                                   "as within time (col. 12) even if their due had passed before the pause")
    report_withdrawn_on_time: bool = Field(
        default=False, description="count dossiers withdrawn at the applicant's request as resolved on time "
                                   "(col. 9) whatever the workflow judged at the stop")
    agency_webhook_secrets: dict[str, SecretStr] = Field(
        default_factory=dict, description="from LIENTHONG_WEBHOOK_SECRET_<AGENCY> variables",
        json_schema_extra={"environment": "LIENTHONG_WEBHOOK_SECRET_<AGENCY_CODE>"})

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _AgencySecrets(settings_cls), dotenv_settings, file_secret_settings

    @field_validator("province_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown time zone {value!r} (expected an IANA name like Asia/Ho_Chi_Minh)") from err
        return value

    @property
    def receipt_max_age(self) -> timedelta:
        return timedelta(days=self.receipt_max_age_days)

    def webhook_secret_for(self, agency: str) -> bytes | None:
        """The agency's own secret, else the shared one, else None."""
        specific = self.agency_webhook_secrets.get(agency_secret_variable(agency)) or self.webhook_secret
        return specific.get_secret_value().encode() if specific else None


def get_settings() -> Settings:
    return Settings()
