"""Settings from CALLGATE_* and callgate.toml; an invalid one is one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from callgate.config import load_settings
from callgate.domain import Kind
from callgate.exceptions import ConfigurationError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("CALLGATE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    s = load_settings()
    assert (s.database_url, s.environment, s.fax_retry_delay, s.fax_max_attempts) == (
        "sqlite:///callgate.db",
        "development",
        600.0,
        20,
    )


def test_env_over_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "callgate.toml").write_text("rate = 3.5\nfax_max_attempts = 7\n")
    monkeypatch.setenv("CALLGATE_RATE", "9")
    monkeypatch.setenv("CALLGATE_FAX_RETRY_DELAY", "0.25")
    s = load_settings()
    assert (s.rate, s.fax_max_attempts, s.fax_retry_delay) == (9.0, 7, 0.25)
    assert s.kind_policies()[Kind.FAX].retry_delay == 0.25


@pytest.mark.parametrize(
    ("name", "value", "expect"),
    [
        ("CALLGATE_RATE", "fast", "CALLGATE_RATE"),
        ("CALLGATE_MAX_CONCURRENCY", "0", "CALLGATE_MAX_CONCURRENCY"),
        ("CALLGATE_ENVIRONMENT", "prod", "CALLGATE_ENVIRONMENT"),
        ("CALLGATE_SIMULATOR_MIX", '{"busy": 2}', "CALLGATE_SIMULATOR_MIX"),
        ("CALLGATE_SIMULATOR_MIX", "{busy", "CALLGATE_SIMULATOR_MIX"),
    ],
)
def test_invalid_setting_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expect: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert expect in info.value.message
    assert "\n" not in info.value.message


def test_unknown_key_in_toml_is_refused(tmp_path: Path) -> None:
    (tmp_path / "callgate.toml").write_text("rtae = 3\n")
    with pytest.raises(ConfigurationError, match="rtae"):
        load_settings()


def test_missing_config_file_named_by_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLGATE_CONFIG", "/nonexistent/callgate.toml")
    with pytest.raises(ConfigurationError, match="not a file"):
        load_settings()


def test_guardrail_settings_from_env_and_toml(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "callgate.toml").write_text(
        'allowlist = ["+12025550143"]\n[caps]\ncall = "1/12h"\n[quiet_hours]\nfax = "22:00-06:00"\n'
    )
    monkeypatch.setenv("CALLGATE_CAPS__SMS", "5/1h")
    monkeypatch.setenv("CALLGATE_QUIET_HOURS__SMS", "none")
    monkeypatch.setenv("CALLGATE_BREAKER__CEILING", "600")
    monkeypatch.setenv("CALLGATE_AUDIT__MASK_PII", "true")
    s = load_settings()
    assert s.allowlist == ["+12025550143"]
    assert (s.caps.sms, s.caps.call, s.caps.fax) == ("5/1h", "1/12h", None)
    assert s.caps.fax_duplicates == "3/24h"  # the same fax again and again is capped
    assert (s.quiet_hours.sms, s.quiet_hours.call, s.quiet_hours.fax) == (
        None,
        "21:00-08:00",
        "22:00-06:00",
    )
    assert s.breaker.ceiling == 600
    assert s.audit.mask_pii is True


@pytest.mark.parametrize(
    ("name", "value", "expect"),
    [
        ("CALLGATE_CAPS__SMS", "3 a day", "CALLGATE_CAPS__SMS"),
        ("CALLGATE_QUIET_HOURS__CALL", "9pm-8am", "CALLGATE_QUIET_HOURS__CALL"),
        ("CALLGATE_DEFAULT_TIMEZONE", "Mars/Olympus", "CALLGATE_DEFAULT_TIMEZONE"),
        ("CALLGATE_BREAKER__FACTOR", "1", "CALLGATE_BREAKER__FACTOR"),
    ],
)
def test_invalid_guardrail_setting_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expect: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert expect in info.value.message


def test_production_with_the_simulator_needs_the_flag() -> None:
    from callgate.clock import SystemClock
    from callgate.gateway import make_provider

    with pytest.raises(ConfigurationError, match="ALLOW_SIMULATOR_IN_PRODUCTION"):
        make_provider(load_settings(environment="production"), SystemClock())
    flagged = load_settings(environment="production", allow_simulator_in_production=True)
    assert make_provider(flagged, SystemClock()) is not None
