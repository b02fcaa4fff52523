"""``callgate alerts``: the alerts open now, or their history (issue 17)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from callgate.cli.common import JsonFlag, friendly, gateway, out, print_json
from callgate.domain import from_ts, iso

commands = typer.Typer()


@commands.command()
@friendly
def alerts(
    show_all: Annotated[
        bool, typer.Option("--all", help="Every alert raised, resolved ones too (history).")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    check: Annotated[
        bool, typer.Option("--check", help="Evaluate the rules now first (raise or resolve).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """List the open alerts (--all: the history too), newest first. The exit status is 0
    either way: a monitor reads --json, or the metric callgate_alerts_open."""
    with gateway() as gw:
        if check:
            gw.alerts.check()
        found = gw.alerts.list(open_only=not show_all, limit=limit)
    if as_json:
        print_json([a.to_dict() for a in found])
        return
    if not found:
        out.print("no alerts" + ("" if show_all else " open"))
        return
    table = Table("id", "rule", "subject", "raised", "resolved", "message")
    for a in found:
        resolved = "open" if a.resolved_at is None else str(iso(from_ts(a.resolved_at)))
        raised = str(iso(from_ts(a.raised_at)))
        table.add_row(str(a.id), a.rule, a.subject, raised, resolved, a.message)
    out.print(table)
