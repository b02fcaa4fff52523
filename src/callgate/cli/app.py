"""The ``callgate`` command: send jobs, run workers, inspect and steer jobs.

A thin shell over :class:`callgate.Gateway`, one module per group of commands
(:mod:`.send`, :mod:`.jobs`, :mod:`.run`, :mod:`.keys`, :mod:`.webhooks`,
:mod:`.simulator`, :mod:`.batch`, :mod:`.guardrails`, :mod:`.observe`; shared pieces in
:mod:`.common`).
Every command that prints data takes ``--json``; every error is one line on stderr and a
non-zero exit, never a traceback.
"""

from __future__ import annotations

import typer

from callgate.cli.batch import batch_app
from callgate.cli.export import commands as export_commands
from callgate.cli.guardrails import allow_app, audit_app, breaker_app, suppress_app
from callgate.cli.guardrails import commands as guardrail_commands
from callgate.cli.jobs import jobs_app
from callgate.cli.keys import keys_app
from callgate.cli.observe import commands as observe_commands
from callgate.cli.run import commands as run_commands
from callgate.cli.send import send_app
from callgate.cli.simulator import commands as simulator_commands
from callgate.cli.webhooks import hooks_app

app = typer.Typer(
    name="callgate",
    help="A reliable gateway for outbound faxes, SMS, calls and provider API requests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(run_commands)  # worker, serve, migrate, demo
app.add_typer(simulator_commands)
app.add_typer(guardrail_commands)  # providers
app.add_typer(observe_commands)  # alerts
app.add_typer(export_commands)  # export
app.add_typer(send_app, name="send")
app.add_typer(jobs_app, name="jobs")
app.add_typer(keys_app, name="keys")
app.add_typer(hooks_app, name="webhooks")
app.add_typer(batch_app, name="batch")
app.add_typer(allow_app, name="allowlist")
app.add_typer(suppress_app, name="suppress")
app.add_typer(breaker_app, name="breaker")
app.add_typer(audit_app, name="audit")


def main() -> None:
    app()
