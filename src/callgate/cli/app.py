"""The ``callgate`` command: send jobs, run workers, inspect and steer jobs.

A thin shell over :class:`callgate.Gateway`, one module per group of commands
(:mod:`.send`, :mod:`.jobs`, :mod:`.run`, :mod:`.keys`, :mod:`.webhooks`,
:mod:`.simulator`, :mod:`.batch`, :mod:`.guardrails`; shared pieces in :mod:`.common`).
Every command that prints data takes ``--json``; every error is one line on stderr and a
non-zero exit, never a traceback.
"""

from __future__ import annotations

import typer

from callgate.cli import batch, guardrails, jobs, keys, run, send, simulator, webhooks

app = typer.Typer(
    name="callgate",
    help="A reliable gateway for outbound faxes, SMS, calls and provider API requests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(run.commands)  # worker, serve, migrate, demo
app.add_typer(simulator.commands)
app.add_typer(guardrails.commands)  # providers
app.add_typer(send.send_app, name="send")
app.add_typer(jobs.jobs_app, name="jobs")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(webhooks.hooks_app, name="webhooks")
app.add_typer(batch.batch_app, name="batch")
app.add_typer(guardrails.allow_app, name="allowlist")
app.add_typer(guardrails.suppress_app, name="suppress")
app.add_typer(guardrails.breaker_app, name="breaker")
app.add_typer(guardrails.audit_app, name="audit")

def main() -> None:
    app()
