"""Settings: environment variables ``CALLGATE_*`` over an optional ``callgate.toml``.

Nothing is read at import time: :func:`load_settings` reads them when asked, and an
invalid value becomes one :class:`~callgate.exceptions.ConfigurationError` line.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from callgate.domain import MAX_RATE, MIN_RATE, Kind
from callgate.exceptions import ConfigurationError
from callgate.policies import DEFAULTS, Cap, KindPolicy, QuietWindow

# -- providers (issue 5) ---------------------------------------------------------------
ProviderName = Literal["simulator", "twilio", "signalwire", "telnyx"]
#: secret settings that also have a ``*_file`` variant
SECRET_FILES = (
    "twilio_auth_token",
    "twilio_api_secret",
    "signalwire_api_token",
    "signalwire_signing_key",
    "telnyx_api_key",
)


# -- guardrails (issue 7) --------------------------------------------------------------


def _none_if_blank(value: object) -> object:
    if isinstance(value, str) and value.strip().lower() in ("", "none", "off"):
        return None
    return value


class CapsSettings(BaseModel):
    """Per-recipient caps per kind, ``"3/24h"`` (``CALLGATE_CAPS__SMS``, ``caps.sms``);
    empty or ``none``: no cap. They count jobs that reached the provider, once each (a
    retry is not a new message). ``*_duplicates`` cap identical jobs (the same content to
    the same number): what catches a runaway fax without stopping an office's day."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    fax: str | None = None
    sms: str | None = "3/24h"
    call: str | None = "2/24h"
    request: str | None = None
    fax_duplicates: str | None = "3/24h"
    sms_duplicates: str | None = None
    call_duplicates: str | None = None
    request_duplicates: str | None = None
    over: Literal["hold", "block"] = Field("hold", description="what happens over the cap")

    @field_validator(
        "fax",
        "sms",
        "call",
        "request",
        "fax_duplicates",
        "sms_duplicates",
        "call_duplicates",
        "request_duplicates",
        mode="before",
    )
    @classmethod
    def _cap(cls, value: object) -> object:
        value = _none_if_blank(value)
        if isinstance(value, str):
            Cap.parse(value)
        return value


class QuietHoursSettings(BaseModel):
    """Quiet hours per kind in the recipient's local time, ``"21:00-08:00"``; empty or
    ``none``: none (``CALLGATE_QUIET_HOURS__SMS``, ``quiet_hours.sms``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    fax: str | None = None
    sms: str | None = "21:00-08:00"
    call: str | None = "21:00-08:00"
    request: str | None = None

    @field_validator("fax", "sms", "call", "request", mode="before")
    @classmethod
    def _window(cls, value: object) -> object:
        value = _none_if_blank(value)
        if isinstance(value, str):
            QuietWindow.parse(value)
        return value


class BreakerSettings(BaseModel):
    """The anomaly breaker (``CALLGATE_BREAKER__FACTOR``, ``breaker.factor``, ...)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    enabled: bool = True
    factor: float = Field(10.0, gt=1, description="trip above this × the baseline")
    ceiling: int | None = Field(None, ge=1, description="trip above this many sends/minute")
    baseline_minutes: int = Field(15, ge=1, description="the trailing baseline's length")
    min_per_minute: int = Field(60, ge=1, description="no ratio trip below this")
    baseline_floor: float = Field(
        30.0, ge=0, description="sends/minute the baseline is never taken as less than"
    )

    @field_validator("ceiling", mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        return _none_if_blank(value)


class ProviderCircuitSettings(BaseModel):
    """Each provider's circuit (``CALLGATE_PROVIDER_CIRCUIT__FAILURES``,
    ``provider_circuit.failures``, ...); see docs/providers.md."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    enabled: bool = True
    failures: int = Field(5, ge=1, description="faults in a row that open it (auth: one)")
    window: float = Field(60.0, gt=0, description="seconds those faults fall within")
    probe_after: float = Field(30.0, gt=0, description="seconds before the first probe")
    probe_max: float = Field(600.0, gt=0, description="longest wait between probes")


class AuditSettings(BaseModel):
    """The audit log of provider exchanges (``CALLGATE_AUDIT__MASK_PII``, ``audit.mask_pii``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    mask_pii: bool = Field(False, description="mask numbers and content in the audit log")
    retention_days: float = Field(90.0, gt=0, description="callgate audit prune deletes older")


class BatchRulesSettings(BaseModel):
    """Error rules for batches (``CALLGATE_BATCH_RULES__THROTTLE_AFTER``,
    ``batch_rules.throttle_after``, ...); see docs/batches.md."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    lower_rate_on_429: bool = Field(True, description="repeated 429s lower the batch's rate")
    throttle_after: int = Field(3, ge=1, description="this many 429s within the window")
    throttle_window: float = Field(60.0, gt=0, description="seconds")
    throttle_factor: float = Field(0.5, gt=0, lt=1, description="the batch's rate × this")
    block_suppressed: bool = Field(
        True, description="rows to a suppressed number are blocked as they are read"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CALLGATE_", extra="forbid", env_nested_delimiter="__", allow_inf_nan=False
    )

    database_url: str = Field(
        "sqlite:///callgate.db", description="sqlite:///PATH or postgresql://USER@HOST/DB"
    )
    auto_migrate: bool = Field(True, description="apply new migrations when a process starts")
    environment: Literal["development", "staging", "production"] = "development"
    default_region: str | None = Field(None, description="region for numbers without +")

    # -- guardrails (issue 7): see docs/guardrails.md ----------------------------------
    allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="numbers (or patterns like +1202555*) that may be contacted outside "
        "production, comma-separated",
    )
    allow_simulator_in_production: bool = Field(
        False, description="production with the simulator provider needs this"
    )
    default_timezone: str = Field("UTC", description="for numbers with no single zone")
    caps: CapsSettings = Field(default_factory=CapsSettings)  # type: ignore[arg-type]
    quiet_hours: QuietHoursSettings = Field(default_factory=QuietHoursSettings)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)  # type: ignore[arg-type]
    audit: AuditSettings = Field(default_factory=AuditSettings)  # type: ignore[arg-type]
    batch_rules: BatchRulesSettings = Field(default_factory=BatchRulesSettings)  # type: ignore[arg-type]

    # the HTTP API and webhooks
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(1_000_000, ge=1024, description="larger requests → 413")
    max_batch_bytes: int = Field(
        1_000_000_000, ge=1024, description="larger batch uploads (POST /v1/batches) → 413"
    )
    dns_timeout: float = Field(
        2.0, gt=0, le=30, description="seconds a URL's host may take to resolve (then: not)"
    )
    dns_cache_ttl: float = Field(
        60.0, ge=0, le=86400, description="seconds a host's addresses are remembered"
    )
    sms_help_text: str = Field(
        "Reply STOP to unsubscribe, START to subscribe again. Msg&data rates may apply.",
        min_length=1,
        max_length=1600,
        description="the answer to an inbound HELP or INFO (POST /provider/twilio/sms/inbound)",
    )
    s3_endpoint_url: str | None = Field(
        None,
        description="`callgate export --to s3://...`: an S3-compatible store's URL (MinIO, "
        "Ceph); unset: AWS's own",
    )
    api_key_cache_seconds: float = Field(
        5.0,
        ge=0,
        le=300,
        description="seconds the API remembers a valid key (PostgreSQL; 0: look up on every "
        "request); a revoked key's submits stop at once, its reads within this time",
    )
    url_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="hosts exempt from the SSRF check, comma-separated"
    )
    webhook_url: str | None = Field(None, description="default endpoint for every event")
    webhook_secrets: str | None = Field(None, description="whsec_... secrets, comma-separated")
    webhook_timeout: float = Field(10.0, gt=0)
    webhook_concurrency: int = Field(50, ge=1)

    # metering
    rate: float = Field(10.0, ge=0, le=MAX_RATE, description="calls per second; 0 = unlimited")
    burst: float = Field(1.0, gt=0, description="seconds of meter slots claimable ahead")
    max_concurrency: int = Field(100, ge=1, description="jobs in flight, all workers")
    aimd_decrease: float = Field(0.5, gt=0, lt=1)
    aimd_increase: float = Field(0.05, gt=0, description="rate recovered per second, fraction")

    # the worker
    worker_id: str | None = None
    serve_worker: Literal["auto", "thread", "process", "none"] = Field(
        "auto",
        description="where `callgate serve` runs its worker: thread (in its own process), "
        "process (a `callgate worker` child, on a core of its own), none (an API-only node: "
        "workers run elsewhere); auto: process on PostgreSQL, thread on SQLite",
    )
    lease: float = Field(30.0, gt=0, description="seconds a claim lasts without heartbeat")
    claim_batch: int = Field(500, ge=1)
    idle_poll: float = Field(0.5, gt=0, description="seconds between checks when idle")
    sweep_interval: float = Field(5.0, gt=0)
    shutdown_grace: float = Field(30.0, ge=0)
    poll_initial: float = Field(1.0, gt=0, description="first status poll after sending")
    poll_max: float = Field(30.0, gt=0, description="longest gap between status polls")
    track_timeout: float = Field(3600.0, gt=0, description="give up tracking → uncertain")

    # reconciliation of uncertain attempts (engine/reconcile.py)
    reconcile_interval: float = Field(
        30.0, ge=0, description="seconds between looks for uncertain jobs; 0 = off"
    )
    reconcile_pad: float = Field(
        120.0, ge=0, description="seconds either side of an attempt's window (clock skew)"
    )
    reconcile_retry_delay: float = Field(
        60.0, gt=0, description="seconds before asking again a provider that did not answer"
    )
    reconcile_give_up: float = Field(
        86_400.0, gt=0, description="an attempt still undecided after this long is held"
    )

    # retries per kind
    fax_retry_delay: float = Field(DEFAULTS[Kind.FAX].retry_delay, ge=0)
    fax_max_attempts: int = Field(DEFAULTS[Kind.FAX].max_attempts, ge=1)
    sms_retry_delay: float = Field(DEFAULTS[Kind.SMS].retry_delay, ge=0)
    sms_max_attempts: int = Field(DEFAULTS[Kind.SMS].max_attempts, ge=1)
    call_retry_delay: float = Field(DEFAULTS[Kind.CALL].retry_delay, ge=0)
    call_max_attempts: int = Field(DEFAULTS[Kind.CALL].max_attempts, ge=1)
    request_retry_delay: float = Field(DEFAULTS[Kind.REQUEST].retry_delay, ge=0)
    request_max_attempts: int = Field(DEFAULTS[Kind.REQUEST].max_attempts, ge=1)
    retry_jitter: float = Field(0.1, ge=0, lt=1)
    backoff_base: float = Field(5.0, ge=0)
    backoff_max: float = Field(600.0, ge=0)

    # the built-in simulator
    simulator_log: Path | None = None
    simulator_latency: float = Field(0.0, ge=0)
    simulator_latency_jitter: float = Field(0.0, ge=0, description="plus U(0, jitter) s a call")
    simulator_fax_duration: float = Field(0.0, ge=0)
    simulator_mix: dict[str, float] = Field(default_factory=dict)
    simulator_seed: int | None = None

    # -- providers (issue 5): who sends each kind, and the vendors' credentials --------
    # Secrets are SecretStr (never in a repr or a log line); each can also be read from a
    # file named by its ``*_FILE`` variant (e.g. CALLGATE_TWILIO_AUTH_TOKEN_FILE).
    provider_fax: ProviderName | None = Field(None, description="default: see docs")
    provider_sms: ProviderName | None = None
    provider_call: ProviderName | None = None
    provider_request: ProviderName | None = None
    public_url: str | None = Field(None, description="base of the status-callback URLs")
    provider_timeout: float = Field(30.0, gt=0, description="seconds per provider request")
    provider_circuit: ProviderCircuitSettings = Field(default_factory=ProviderCircuitSettings)  # type: ignore[arg-type]
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_auth_token_file: Path | None = None
    twilio_api_key: str | None = Field(None, description="an API key's SID (SK...)")
    twilio_api_secret: SecretStr | None = None
    twilio_api_secret_file: Path | None = None
    twilio_from: str | None = None
    twilio_messaging_service_sid: str | None = Field(None, description="MG...: SMS sender")
    twilio_base_url: str | None = Field(None, description="one base URL for every domain")
    twilio_accept_sent: bool = Field(False, description="SMS 'sent' counts as delivered")
    signalwire_project_id: str | None = None
    signalwire_api_token: SecretStr | None = None
    signalwire_api_token_file: Path | None = None
    signalwire_signing_key: SecretStr | None = None
    signalwire_signing_key_file: Path | None = None
    signalwire_space_url: str | None = None
    signalwire_from: str | None = None
    telnyx_api_key: SecretStr | None = None
    telnyx_api_key_file: Path | None = None
    telnyx_public_key: str | None = Field(None, description="base64 Ed25519 key for webhooks")
    telnyx_connection_id: str | None = None
    telnyx_from: str | None = None
    telnyx_base_url: str = "https://api.telnyx.com/v2"
    telnyx_webhook_tolerance: float = Field(300.0, gt=0, description="seconds (replays)")

    # -- observability (issue 17): metrics, logs, alerts ---------------------------------
    metrics_token: SecretStr | None = Field(
        None, description="GET /metrics requires Authorization: Bearer <this> (unset: open)"
    )
    log_format: Literal["text", "json"] = Field("text", description="json: one object a line")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info")
    alert_interval: float = Field(15.0, ge=0, description="seconds between rule checks; 0: off")
    alert_queued_minutes: float = Field(15.0, gt=0, description="oldest job due waiting longer")
    alert_heartbeat_seconds: float = Field(60.0, gt=0, description="no worker heartbeat for")
    alert_dead_letters: int = Field(10, ge=0, description="more jobs failed for good in an hour")
    alert_webhook_failing_minutes: float = Field(60.0, gt=0, description="endpoint failing for")
    alert_batch_error_percent: float = Field(10.0, gt=0, le=100, description="batch rows failed")
    alert_batch_min_rows: int = Field(20, ge=1, description="finished rows before a batch's rate")

    def serve_worker_mode(self) -> str:
        """``serve_worker`` with ``auto`` decided by the database: a worker of its own on
        PostgreSQL (which wakes workers across processes), in place on SQLite (one
        process, woken in place)."""
        if self.serve_worker != "auto":
            return self.serve_worker
        return "process" if self.database_url.startswith(("postgresql:", "postgres:")) else "thread"

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("rate")
    @classmethod
    def _usable_rate(cls, value: float) -> float:
        if value and value < MIN_RATE:
            raise ValueError(f"a rate is 0 (unlimited) or at least {MIN_RATE:g} calls/s")
        return value

    @field_validator(
        "twilio_auth_token_file",
        "twilio_api_secret_file",
        "signalwire_api_token_file",
        "signalwire_signing_key_file",
        "telnyx_api_key_file",
    )
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a readable file")
        return value

    @field_validator("public_url", "twilio_base_url", "telnyx_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @model_validator(mode="after")
    def _secrets_from_files(self) -> Settings:
        for name in SECRET_FILES:
            path: Path | None = getattr(self, f"{name}_file")
            if getattr(self, name) is None and path is not None:
                object.__setattr__(self, name, SecretStr(path.read_text().strip()))
        return self

    # -- end of the providers block ---------------------------------------------------

    @field_validator("default_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone") from None
        return value

    @field_validator("url_allowlist", "allowlist", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    @field_validator("simulator_mix")
    @classmethod
    def _mix_is_outcomes(cls, value: dict[str, float]) -> dict[str, float]:
        from callgate.domain import Outcome

        for key, p in value.items():
            Outcome(key)
            if not 0 <= p <= 1:
                raise ValueError(f"probability for {key} must be between 0 and 1")
        if sum(value.values()) > 1:
            raise ValueError("probabilities add up to more than 1")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("CALLGATE_CONFIG", "callgate.toml")
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )

    def secret_values(self) -> list[str]:
        """Every credential's value (the audit log redacts them wherever they appear)."""
        values = [getattr(self, name) for name in SECRET_FILES]
        values.append(self.metrics_token)
        found = [v.get_secret_value() for v in values if v is not None]
        return found + [s.strip() for s in (self.webhook_secrets or "").split(",") if s.strip()]

    def kind_policies(self) -> dict[Kind, KindPolicy]:
        return {
            kind: KindPolicy(
                max_attempts=getattr(self, f"{kind}_max_attempts"),
                retry_delay=getattr(self, f"{kind}_retry_delay"),
                jitter=self.retry_jitter,
                backoff_base=self.backoff_base,
                backoff_max=self.backoff_max,
            )
            for kind in Kind
        }


def load_settings(**overrides: object) -> Settings:
    """Read the settings now; raise one clear ConfigurationError if any is invalid."""
    config = os.environ.get("CALLGATE_CONFIG")
    if config and not Path(config).is_file():
        raise ConfigurationError(f"CALLGATE_CONFIG names {config!r}, which is not a file")
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "settings"
        env = "CALLGATE_" + name.upper().replace(".", "__")  # nested: CALLGATE_CAPS__SMS
        where = f"{name} ({env} or {name!r} in the config file)"
        raise ConfigurationError(f"invalid setting {where}: {err['msg']}", field=name) from None
    except tomllib.TOMLDecodeError as exc:
        path = os.environ.get("CALLGATE_CONFIG", "callgate.toml")
        raise ConfigurationError(f"cannot read the config file {path}: {exc}") from None
    except (SettingsError, ValueError) as exc:
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        named = re.search(r'field "(\w+)"', str(exc))
        if named is None:
            raise ConfigurationError(f"cannot read the settings: {exc}{cause}") from None
        name = named.group(1)
        raise ConfigurationError(
            f"invalid setting {name} (CALLGATE_{name.upper()}): not valid JSON{cause}",
            field=name,
        ) from None
