"""Which provider sends each kind: settings, defaults, secrets, and the per-kind router."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from callgate.clock import ManualClock
from callgate.config import Settings, load_settings
from callgate.domain import AttemptResult, Job, Kind, Outcome
from callgate.exceptions import ConfigurationError
from callgate.providers.base import CannotReconcile, Found, PushedStatuses, StatusListener
from callgate.providers.routing import RoutingProvider, build_provider, resolve
from callgate.providers.simulator import Simulator
from callgate.providers.twilio import TwilioProvider
from tests.factories import in_flight_job

TWILIO = {"twilio_account_sid": "AC1", "twilio_auth_token": "t0ken-secret", "twilio_from": "+1"}
TELNYX = {"telnyx_api_key": "KEY-secret", "telnyx_connection_id": "c1", "telnyx_from": "+1"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("CALLGATE_"):
            monkeypatch.delenv(name)


def choices(settings: Settings) -> dict[str, str]:
    return {str(kind): resolve(settings, kind) for kind in Kind}


def test_the_simulator_is_the_default_for_every_kind() -> None:
    assert set(choices(Settings())) == set(Kind)
    assert set(choices(Settings()).values()) == {"simulator"}


def test_credentials_alone_do_not_leave_the_simulator_outside_production() -> None:
    assert set(choices(Settings(**TWILIO, **TELNYX)).values()) == {"simulator"}


def test_in_production_configured_vendors_are_used(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(environment="production", **TWILIO)
    with caplog.at_level(logging.WARNING, "callgate.providers"):
        picked = choices(settings)
    assert picked == {"fax": "simulator", "sms": "twilio", "call": "twilio", "request": "twilio"}
    assert "CALLGATE_PROVIDER_FAX" in caplog.text  # the simulator in production is loud
    settings = Settings(environment="production", **TWILIO, **TELNYX)
    assert choices(settings)["fax"] == "telnyx"


def test_an_explicit_choice_wins() -> None:
    settings = Settings(environment="production", provider_sms="simulator", **TWILIO)
    assert choices(settings)["sms"] == "simulator"
    assert choices(Settings(provider_fax="telnyx", **TELNYX))["fax"] == "telnyx"


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"provider_fax": "telnyx"}, "telnyx_api_key", "CALLGATE_TELNYX_API_KEY"),
        ({"provider_sms": "telnyx", **TELNYX}, "provider_sms", "sends no sms"),
        ({"provider_fax": "twilio", **TWILIO}, "provider_fax", "sends no fax"),
        (
            {"provider_sms": "twilio", **{k: v for k, v in TWILIO.items() if k != "twilio_from"}},
            "twilio_from",
            "CALLGATE_TWILIO_FROM",
        ),
        ({"provider_fax": "signalwire"}, "signalwire_project_id", "CALLGATE_SIGNALWIRE_PROJECT_ID"),
    ],
)
def test_an_impossible_choice_stops_at_start(
    overrides: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        build_provider(Settings(**overrides), ManualClock())
    assert caught.value.field == field
    assert words in caught.value.message


def test_requests_need_no_from_number() -> None:
    creds = {k: v for k, v in TWILIO.items() if k != "twilio_from"}
    router = build_provider(Settings(provider_request="twilio", **creds), ManualClock())
    assert isinstance(router.provider_for("request"), TwilioProvider)
    assert isinstance(router.provider_for("sms"), Simulator)


def test_status_callback_urls_come_from_the_public_url() -> None:
    settings = Settings(provider_sms="twilio", public_url="https://gw.example.org/", **TWILIO)
    twilio = build_provider(settings, ManualClock()).provider_for(Kind.SMS)
    assert isinstance(twilio, TwilioProvider)
    assert twilio.status_callback == "https://gw.example.org/provider/twilio/status"
    no_url = build_provider(Settings(provider_sms="twilio", **TWILIO), ManualClock())
    assert no_url.provider_for(Kind.SMS).status_callback is None  # type: ignore[attr-defined]


def test_secrets_stay_out_of_reprs() -> None:
    settings = Settings(provider_sms="twilio", provider_fax="telnyx", **TWILIO, **TELNYX)
    router = build_provider(settings, ManualClock())
    for text in (repr(settings), str(settings), repr(router)):
        assert "t0ken-secret" not in text
        assert "KEY-secret" not in text
    assert settings.twilio_auth_token is not None
    assert settings.twilio_auth_token.get_secret_value() == "t0ken-secret"


def test_secrets_can_come_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "twilio-token"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("CALLGATE_TWILIO_AUTH_TOKEN_FILE", str(secret))
    settings = load_settings()
    assert settings.twilio_auth_token is not None
    assert settings.twilio_auth_token.get_secret_value() == "from-a-file"
    monkeypatch.setenv("CALLGATE_TWILIO_AUTH_TOKEN", "from-the-env")
    token = load_settings().twilio_auth_token
    assert token is not None
    assert token.get_secret_value() == "from-the-env"  # the variable itself wins


def test_a_missing_secret_file_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLGATE_TELNYX_API_KEY_FILE", str(tmp_path / "nope"))
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert caught.value.field == "telnyx_api_key_file"


@pytest.mark.parametrize("name", ["public_url", "twilio_base_url", "telnyx_base_url"])
def test_urls_must_be_http(name: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(**{name: "ftp://x"})
    assert caught.value.field == name


# -- the router ---------------------------------------------------------------------------


class Fake:
    """A provider that records what it was asked."""

    def __init__(self, name: str, *, finds: bool = True) -> None:
        self.name = name
        self.sent: list[int] = []
        self.pushed = PushedStatuses()
        self.closed = 0
        if finds:
            self.find = self._find

    async def send(self, job: Job) -> AttemptResult:
        self.sent.append(job.id)
        return AttemptResult(None, f"{self.name}-{job.id}")

    async def status(self, job: Job, ref: str) -> AttemptResult:
        return self.pushed.pop(ref) or AttemptResult(None, ref)

    async def _find(self, job: Job, since: float, until: float) -> list[Found]:
        return [Found(f"{self.name}-1", AttemptResult(Outcome.DELIVERED))]

    def set_listener(self, listener: StatusListener | None) -> None:
        self.pushed.listener = listener

    def push(self, ref: str, result: AttemptResult) -> None:
        self.pushed.push(ref, result)

    async def aclose(self) -> None:
        self.closed += 1


def test_each_kind_goes_to_its_provider() -> None:
    fax, rest = Fake("telnyx"), Fake("twilio", finds=False)
    router = RoutingProvider({Kind.FAX: fax, Kind.SMS: rest, Kind.CALL: rest, Kind.REQUEST: rest})

    async def scenario() -> None:
        await router.send(in_flight_job(kind=Kind.FAX, job_id=1))
        await router.send(in_flight_job(kind=Kind.SMS, job_id=2))
        await router.send(in_flight_job(kind=Kind.CALL, job_id=3))
        assert [f.ref for f in await router.find(in_flight_job(kind=Kind.FAX), 0, 1)] == [
            "telnyx-1"
        ]
        with pytest.raises(CannotReconcile):
            await router.find(in_flight_job(kind=Kind.SMS), 0, 1)
        await router.aclose()

    asyncio.run(scenario())
    assert (fax.sent, rest.sent) == ([1], [2, 3])
    assert (fax.closed, rest.closed) == (1, 1)  # once each, however many kinds it serves


def test_a_pushed_status_wakes_the_listener_and_answers_the_next_poll() -> None:
    fax = Fake("telnyx")
    router = RoutingProvider(dict.fromkeys(Kind, fax))
    woken: list[str] = []
    router.set_listener(woken.append)
    assert router.push("telnyx", "f-1", AttemptResult(None, "f-1")) is True
    assert woken == []  # still under way: nothing to wake for
    assert router.push("telnyx", "f-1", AttemptResult(Outcome.BUSY, "f-1")) is True
    assert woken == ["f-1"]
    job = in_flight_job(kind=Kind.FAX)
    assert asyncio.run(router.status(job, "f-1")).outcome is Outcome.BUSY
    assert asyncio.run(router.status(job, "f-1")).outcome is None  # taken once
    assert router.push("twilio", "x", AttemptResult(Outcome.DELIVERED)) is False


def test_pushed_statuses_are_bounded() -> None:
    pushed = PushedStatuses(limit=2)
    for ref in ("a", "b", "c"):
        pushed.push(ref, AttemptResult(Outcome.DELIVERED, ref))
    assert pushed.pop("a") is None
    assert pushed.pop("c") is not None


def test_the_default_router_is_the_simulator_for_every_kind(make_settings: Any) -> None:
    router = build_provider(make_settings(), ManualClock())
    assert {type(p) for p in router.routes.values()} == {Simulator}
    assert len(router.by_name) == 1  # one simulator: one set of counters, one log
    busy = asyncio.run(router.send(in_flight_job("+15005550110", Kind.FAX)))
    assert busy.outcome is Outcome.BUSY


def test_the_simulator_finds_its_calls() -> None:
    clock = ManualClock(1000.0)
    sim = Simulator(clock, fax_duration=60)

    async def scenario() -> None:
        job = in_flight_job("+15005550006", Kind.FAX)
        sent = await sim.send(job)
        [found] = await sim.find(job, 1000.0, 1001.0)
        assert (found.ref, found.result.outcome) == (sent.provider_ref, None)
        clock.advance(60)
        [found] = await sim.find(job, 1000.0, 1001.0)
        assert found.result.outcome is Outcome.DELIVERED
        assert await sim.find(job, 1001.0, 2000.0) == []
        assert await sim.find(in_flight_job("+15005550007", Kind.FAX), 1000, 2000) == []
        # before it was made, it cannot know: absence is not proven
        with pytest.raises(CannotReconcile, match="only knows the calls of this process"):
            await sim.find(job, 999.0, 1001.0)

    asyncio.run(scenario())


def test_an_api_key_and_a_messaging_service_are_enough_for_sms() -> None:
    """Twilio's recommended credentials (an API key and its secret) stand in for the auth
    token, and a Messaging Service for the sender number; a call still needs a number."""
    key = {
        "twilio_account_sid": "AC1",
        "twilio_api_key": "SK1",
        "twilio_api_secret": "k3y-secret",
        "twilio_messaging_service_sid": "MG" + "a" * 32,
    }
    router = build_provider(Settings(provider_sms="twilio", **key), ManualClock())
    twilio = router.provider_for(Kind.SMS)
    assert isinstance(twilio, TwilioProvider)
    assert twilio.messaging_service_sid == key["twilio_messaging_service_sid"]
    assert twilio.client.username == "SK1"  # the SDK authenticates with the key
    assert "k3y-secret" in Settings(**key).secret_values()  # redacted from the audit log
    with pytest.raises(ConfigurationError) as caught:
        build_provider(Settings(provider_call="twilio", **key), ManualClock())
    assert caught.value.field == "twilio_from"
    no_secret = {k: v for k, v in key.items() if k != "twilio_api_secret"}
    with pytest.raises(ConfigurationError) as caught:
        build_provider(Settings(provider_sms="twilio", **no_secret), ManualClock())
    assert caught.value.field == "twilio_auth_token"
