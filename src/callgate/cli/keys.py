"""``callgate keys create|list|revoke``: API keys for the HTTP API."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from callgate.cli.common import (
    JsonFlag,
    err,
    friendly,
    gateway,
    out,
    print_json,
)

keys_app = typer.Typer(help="API keys for the HTTP API.", no_args_is_help=True)

# -- keys


@keys_app.command("create")
@friendly
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what uses this key.")],
    as_json: JsonFlag = False,
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    with gateway() as gw:
        key, token = gw.keys.create(name)
    if as_json:
        print_json(key.to_dict() | {"key": token})
    else:
        out.print(token, markup=False, highlight=False)
        err.print(f"callgate: key {key.id} ({name}) created; it is shown only this once")


@keys_app.command("list")
@friendly
def keys_list(as_json: JsonFlag = False) -> None:
    """List API keys (ids and prefixes, never the keys)."""
    with gateway() as gw:
        keys = gw.keys.list()
    if as_json:
        print_json([k.to_dict() for k in keys])
        return
    table = Table("id", "name", "prefix", "created", "revoked")
    for k in keys:
        table.add_row(
            k.id,
            k.name,
            k.prefix + "…",
            k.created_at.isoformat(timespec="seconds"),
            "" if k.revoked_at is None else k.revoked_at.isoformat(timespec="seconds"),
        )
    out.print(table)


@keys_app.command("revoke")
@friendly
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")]) -> None:
    """Revoke an API key: requests with it get 401 from now on."""
    with gateway() as gw:
        if not gw.keys.revoke(key_id):
            from callgate.exceptions import NotFound

            raise NotFound(f"no active API key {key_id}", field="key_id")
    out.print(f"revoked {key_id}")
