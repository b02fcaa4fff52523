"""``callgate allowlist``, ``callgate suppress``, ``callgate breaker``: the guardrails a
person steers from the command line (see docs/guardrails.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from callgate.cli.common import JsonFlag, friendly, gateway, out, print_json
from callgate.domain import Kind, normalize_number
from callgate.exceptions import NotFound, ValidationError
from callgate.services import allowlist_entry

allow_app = typer.Typer(
    help="Numbers that may be contacted outside production.", no_args_is_help=True
)
suppress_app = typer.Typer(help="Numbers callgate will not contact.", no_args_is_help=True)
breaker_app = typer.Typer(
    help="The anomaly breaker and kill switch (no command: its status).",
    invoke_without_command=True,
)
commands = typer.Typer()

Number = Annotated[str, typer.Argument(help="E.164 number, like +15551234567.")]
KindOpt = Annotated[
    Kind | None, typer.Option("--kind", help="Only this kind (default: every kind).")
]


# -- allowlist -------------------------------------------------------------------------


@allow_app.command("add")
@friendly
def allowlist_add(
    number: Annotated[str, typer.Argument(help="E.164 number, or a pattern like +1202555*.")],
    note: Annotated[str | None, typer.Option(help="Who this is.")] = None,
) -> None:
    """Allow a number (or pattern) outside production."""
    entry = allowlist_entry(number)
    with gateway() as gw:
        added = gw.guardrails.allow(entry, note=note)
    out.print(f"{'allowlisted' if added else 'already allowlisted'}: {entry}", markup=False)


@allow_app.command("remove")
@friendly
def allowlist_remove(number: Number) -> None:
    """Remove a number (or pattern) from the stored allowlist."""
    entry = allowlist_entry(number)
    with gateway() as gw:
        if not gw.guardrails.disallow(entry):
            raise NotFound(f"{entry} is not on the stored allowlist", field="number")
    out.print(f"removed from the allowlist: {entry}", markup=False)


@allow_app.command("list")
@friendly
def allowlist_list(as_json: JsonFlag = False) -> None:
    """The stored allowlist, and the configured one (CALLGATE_ALLOWLIST)."""
    with gateway() as gw:
        stored = gw.guardrails.allowlist()
        configured = sorted(gw.guard.rules.allowlist.entries)
        env, enforced = gw.settings.environment, gw.guard.rules.allowlisting
    if as_json:
        print_json(
            {"environment": env, "enforced": enforced, "configured": configured, "data": stored}
        )
        return
    table = Table("number", "note", "added", "from")
    for entry in configured:
        table.add_row(entry, "", "", "settings")
    for e in stored:
        table.add_row(e["number"], e["note"] or "", e["created_at"] or "", "stored")
    out.print(table)
    state = "enforced" if enforced else "not enforced (production: every number may be contacted)"
    out.print(f"environment {env}: the allowlist is {state}", markup=False)


# -- suppressions ----------------------------------------------------------------------


@suppress_app.command("add")
@friendly
def suppress_add(
    number: Number,
    kind: KindOpt = None,
    reason: Annotated[str, typer.Option(help="Why (a short code).")] = "manual",
) -> None:
    """Stop contacting a number (for one kind, or every kind)."""
    e164 = normalize_number(number, field="number")
    with gateway() as gw:
        added = gw.guardrails.suppress(
            e164, None if kind is None else str(kind), reason, detail="by hand"
        )
    what = "every kind" if kind is None else str(kind)
    out.print(f"{'suppressed' if added else 'already suppressed'}: {e164} ({what})", markup=False)


@suppress_app.command("remove")
@friendly
def suppress_remove(number: Number, kind: KindOpt = None) -> None:
    """Lift a suppression (all of the number's, unless --kind)."""
    e164 = normalize_number(number, field="number")
    with gateway() as gw:
        if not gw.guardrails.unsuppress(e164, None if kind is None else str(kind)):
            raise NotFound(f"{e164} is not suppressed", field="number")
    out.print(f"no longer suppressed: {e164}", markup=False)


@suppress_app.command("list")
@friendly
def suppress_list(
    number: Annotated[str | None, typer.Option(help="Only this number.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The suppression list (STOP replies, landlines, by hand)."""
    wanted = None if number is None else normalize_number(number, field="number")
    with gateway() as gw:
        rows = gw.guardrails.suppressions(wanted)
    if as_json:
        print_json(rows)
        return
    table = Table("number", "kind", "reason", "source", "detail", "since")
    for r in rows:
        table.add_row(
            r["number"], r["kind"] or "all", r["reason"], r["source"], r["detail"] or "",
            r["created_at"] or "",
        )  # fmt: skip
    out.print(table)


# -- the breaker -----------------------------------------------------------------------


def _print_breaker(state: dict[str, object], as_json: bool) -> None:
    if as_json:
        print_json(state)
        return
    open_ = state["state"] == "open"
    line = "OPEN: no new sends" if open_ else "closed: sending"
    out.print(f"breaker {line}", markup=False)
    if state.get("detail"):
        rule = f"{state['rule']} rule, " if state.get("rule") else ""
        when = f"({rule}by {state['by']}, {state['changed_at']})"
        out.print(f"why: {state['detail']} {when}", markup=False)


@breaker_app.callback()
@friendly
def breaker_status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Show whether the breaker is open, and why."""
    if ctx.invoked_subcommand is not None:
        return
    with gateway() as gw:
        _print_breaker(gw.breaker(), as_json)


@breaker_app.command("status")
@friendly
def breaker_status_command(as_json: JsonFlag = False) -> None:
    """Show whether the breaker is open, and why."""
    with gateway() as gw:
        _print_breaker(gw.breaker(), as_json)


@breaker_app.command("trip")
@friendly
def breaker_trip(
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "kill switch",
    as_json: JsonFlag = False,
) -> None:
    """The kill switch: stop every new send at once (in-flight jobs finish)."""
    with gateway() as gw:
        gw.trip_breaker(reason, actor="cli")
        _print_breaker(gw.breaker(), as_json)


@breaker_app.command("reset")
@friendly
def breaker_reset(
    reason: Annotated[str, typer.Option(help="Why it is safe to send again (recorded).")],
    as_json: JsonFlag = False,
) -> None:
    """Close the breaker: sending resumes. A reason is required."""
    with gateway() as gw:
        gw.reset_breaker(reason, actor="cli")
        _print_breaker(gw.breaker(), as_json)


# -- providers -------------------------------------------------------------------------


@commands.command("providers")
@friendly
def providers_command(as_json: JsonFlag = False) -> None:
    """Each provider and its circuit: open while it refuses the credentials or fails for
    every job (its jobs wait, without using attempts, until a probe gets through)."""
    with gateway() as gw:
        found = gw.providers()
    if as_json:
        print_json(found)
        return
    table = Table("provider", "kinds", "state", "waiting", "since", "next probe", "why")
    for p in found:
        why = f"{p['fault']}: {p['detail']}" if p["state"] != "closed" else ""
        since = p["opened_at"] if p["state"] != "closed" else ""
        table.add_row(
            p["name"], ", ".join(p["kinds"]), p["state"], str(p["waiting"]), since or "",
            p["probe_at"] or "", why,
        )  # fmt: skip
    out.print(table, markup=False)


# -- the audit log ---------------------------------------------------------------------

audit_app = typer.Typer(help="The audit log of provider requests.", no_args_is_help=True)


@audit_app.command("export")
@friendly
def audit_export(
    since: Annotated[str, typer.Option(help="From this time on (ISO 8601).")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl (one JSON object a line).")] = (
        "jsonl"
    ),
) -> None:
    """Print every provider exchange since a time, oldest first."""
    import json
    import sys

    from callgate.domain import parse_time

    if fmt != "jsonl":
        raise ValidationError(f"unknown format {fmt!r}; expected jsonl", field="format")
    start = parse_time(since, field="since").timestamp()
    with gateway() as gw:
        after = 0
        while rows := gw.guardrails.audit_since(start, after_id=after):
            for row in rows:
                sys.stdout.write(json.dumps(row, separators=(",", ":")) + "\n")
            after = rows[-1]["id"]


@audit_app.command("prune")
@friendly
def audit_prune(
    older_than: Annotated[
        float | None,
        typer.Option(
            min=0, max=36500, help="Days to keep (default: CALLGATE_AUDIT__RETENTION_DAYS)."
        ),
    ] = None,
) -> None:
    """Delete audit rows older than the retention period."""
    with gateway() as gw:
        days = older_than if older_than is not None else gw.settings.audit.retention_days
        deleted = gw.guardrails.prune_audit(days)
    out.print(f"deleted {deleted} audit rows older than {days:g} days", markup=False)
