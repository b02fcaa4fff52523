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
