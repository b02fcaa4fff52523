"""``callgate simulator``: the simulator over HTTP (Twilio, SignalWire and Telnyx shapes)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Annotated, Any

import typer

from callgate.cli.common import (
    err,
    friendly,
)

commands = typer.Typer()

# -- the simulator over HTTP (issue 5) -------------------------------------------------

SimFloat = Annotated[float, typer.Option(min=0.0)]


def _sim_option(help: str, env: str) -> Any:
    return typer.Option(help=help, envvar=f"CALLGATE_SIMULATOR_{env}")


@commands.command()
@friendly
def simulator(
    host: Annotated[str, _sim_option("Address to listen on.", "HOST")] = "127.0.0.1",
    port: Annotated[int, _sim_option("Port (0: any free port; printed).", "PORT")] = 8090,
    log: Annotated[str | None, _sim_option("Append one JSON line per call here.", "LOG")] = None,
    latency: Annotated[float, _sim_option("Seconds each API call takes.", "LATENCY")] = 0.0,
    callback_delay: Annotated[
        float,
        _sim_option("Seconds until an SMS or call ends (and its callback).", "CALLBACK_DELAY"),
    ] = 0.0,
    fax_duration: Annotated[
        float, _sim_option("Seconds a fax takes (errors: a quarter).", "FAX_DURATION")
    ] = 0.0,
    mix: Annotated[
        str | None, _sim_option('Outcomes of other numbers, JSON: {"busy": 0.2}.', "MIX")
    ] = None,
    seed: Annotated[int | None, _sim_option("Seed for the randomness.", "SEED")] = None,
    callbacks: Annotated[
        bool, _sim_option("Post status callbacks (off: a polling-only baseline).", "CALLBACKS")
    ] = True,
    drop_callbacks: Annotated[
        float, _sim_option("Fraction of callbacks to drop (tests polling).", "DROP_CALLBACKS")
    ] = 0.0,
    twilio_account_sid: Annotated[str, _sim_option("Twilio account SID.", "TWILIO_ACCOUNT_SID")] = (
        "ACsimulator"
    ),
    twilio_auth_token: Annotated[str, _sim_option("Twilio auth token.", "TWILIO_AUTH_TOKEN")] = (
        "simulator-auth-token"
    ),
    signalwire_project_id: Annotated[
        str, _sim_option("SignalWire project ID.", "SIGNALWIRE_PROJECT_ID")
    ] = "simulator-project",
    signalwire_api_token: Annotated[
        str, _sim_option("SignalWire API token.", "SIGNALWIRE_API_TOKEN")
    ] = "simulator-api-token",
    signalwire_signing_key: Annotated[
        str, _sim_option("SignalWire signing key (callbacks).", "SIGNALWIRE_SIGNING_KEY")
    ] = "simulator-signing-key",
    telnyx_api_key: Annotated[str, _sim_option("Telnyx API key.", "TELNYX_API_KEY")] = (
        "KEYsimulator"
    ),
    telnyx_private_key: Annotated[
        str | None,
        _sim_option(
            "Base64 Ed25519 seed signing webhooks (default: a new one).", "TELNYX_PRIVATE_KEY"
        ),
    ] = None,
) -> None:
    """Run the simulator over HTTP: Twilio, SignalWire and Telnyx REST shapes on one port."""
    params = dict(locals())  # exactly the options: nothing else is named here yet
    from callgate.providers.simulator.http import SimOptions, parse_mix, run

    if not 0.0 <= drop_callbacks <= 1.0:
        from callgate.exceptions import ValidationError

        raise ValidationError("--drop-callbacks must be between 0 and 1", field="drop_callbacks")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("callgate.simulator").setLevel(logging.INFO)  # dropped callbacks
    options = SimOptions(**(params | {"mix": parse_mix(mix)}))

    def ready(server: Any, bound: int) -> None:
        url = f"http://{host}:{bound}"
        ready_line = {"url": url, "port": bound, "telnyx_public_key": server.public_key}
        sys.stdout.write(json.dumps(ready_line) + "\n")  # one line, for scripts to read
        sys.stdout.flush()
        err.print(f"callgate simulator: serving {url}", markup=False, highlight=False)

    run(options, ready)
