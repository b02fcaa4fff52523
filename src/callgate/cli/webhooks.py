"""``callgate webhooks list|replay|secret``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from callgate.cli.common import (
    JsonFlag,
    friendly,
    gateway,
    out,
    print_json,
)
from callgate.domain import MAX_ID, parse_time

hooks_app = typer.Typer(help="Webhook deliveries and signing secrets.", no_args_is_help=True)

# -- webhooks --------------------------------------------------------------------------


@hooks_app.command("list")
@friendly
def webhooks_list(
    status: Annotated[
        str | None, typer.Option(help="pending, delivered, failed (dead letters) or stopped.")
    ] = None,
    job: Annotated[
        int | None, typer.Option(help="Only this job's deliveries.", min=1, max=MAX_ID)
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List webhook deliveries, newest first."""
    if status not in (None, "pending", "delivered", "failed", "stopped"):
        from callgate.exceptions import ValidationError

        raise ValidationError(f"unknown delivery status {status!r}", field="status")
    with gateway() as gw:
        found = gw.deliveries.list(status=status, job_id=job, limit=limit)
    if as_json:
        print_json([d.to_dict() for d in found])
        return
    table = Table("id", "job", "event", "url", "status", "attempts", "last")
    for d in found:
        last = " ".join(str(x) for x in (d.last_status_code, d.last_error) if x)
        table.add_row(
            str(d.id), str(d.job_id), str(d.event_id), d.url, d.status, str(d.attempts), last[:60]
        )
    out.print(table)


@hooks_app.command("replay")
@friendly
def webhooks_replay(
    delivery_id: Annotated[
        int | None, typer.Argument(help="One delivery's id.", min=1, max=MAX_ID)
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Every failed delivery created since (ISO 8601).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Send deliveries again: one by id, or every failed one since a time."""
    from callgate.exceptions import ValidationError

    if (delivery_id is None) == (since is None):
        raise ValidationError("give either a delivery id or --since", field="since")
    with gateway() as gw:
        if delivery_id is not None:
            n = gw.deliveries.replay(delivery_id=delivery_id)
        else:
            n = gw.deliveries.replay(since=parse_time(str(since), field="since").timestamp())
    if as_json:
        print_json({"replayed": n})
    else:
        out.print(f"replayed {n} deliveries; a running worker or server sends them")


@hooks_app.command("secret")
@friendly
def webhooks_secret(as_json: JsonFlag = False) -> None:
    """Show the active signing secrets (one is generated if none is configured)."""
    with gateway() as gw:
        found = gw.deliveries.secrets(gw.settings)
    if as_json:
        print_json({"secrets": found})
    else:
        for secret in found:
            out.print(secret, markup=False, highlight=False)
