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

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from callgate.domain import Kind
from callgate.engine.retry import DEFAULTS, KindPolicy
from callgate.exceptions import ConfigurationError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALLGATE_", extra="forbid")

    database_url: str = Field(
        "sqlite:///callgate.db", description="sqlite:///PATH or postgresql://USER@HOST/DB"
    )
    auto_migrate: bool = Field(True, description="apply new migrations when a process starts")
    environment: Literal["development", "staging", "production"] = "development"
    default_region: str | None = Field(None, description="region for numbers without +")

    # the HTTP API and webhooks
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(1_000_000, ge=1024, description="larger requests → 413")
    url_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="hosts exempt from the SSRF check, comma-separated"
    )
    webhook_url: str | None = Field(None, description="default endpoint for every event")
    webhook_secrets: str | None = Field(None, description="whsec_... secrets, comma-separated")
    webhook_timeout: float = Field(10.0, gt=0)
    webhook_concurrency: int = Field(50, ge=1)

    # metering
    rate: float = Field(10.0, ge=0, description="calls per second; 0 = unlimited")
    burst: float = Field(1.0, gt=0, description="seconds of meter slots claimable ahead")
    max_concurrency: int = Field(100, ge=1, description="jobs in flight, all workers")
    aimd_decrease: float = Field(0.5, gt=0, lt=1)
    aimd_increase: float = Field(0.05, gt=0, description="rate recovered per second, fraction")

    # the worker
    worker_id: str | None = None
    lease: float = Field(30.0, gt=0, description="seconds a claim lasts without heartbeat")
    claim_batch: int = Field(500, ge=1)
    idle_poll: float = Field(0.5, gt=0, description="seconds between checks when idle")
    sweep_interval: float = Field(5.0, gt=0)
    shutdown_grace: float = Field(30.0, ge=0)
    poll_initial: float = Field(1.0, gt=0, description="first status poll after sending")
    poll_max: float = Field(30.0, gt=0, description="longest gap between status polls")
    track_timeout: float = Field(3600.0, gt=0, description="give up tracking → uncertain")

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

    @field_validator("url_allowlist", mode="before")
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
        where = f"{name} (CALLGATE_{name.upper()} or {name!r} in the config file)"
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
