"""What every command of the CLI shares: the consoles, ``--json``, the error wrapper
(one line on stderr and an exit code, never a traceback) and the gateway it runs on."""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from callgate.config import Settings, load_settings
from callgate.domain import MAX_ID, parse_time
from callgate.exceptions import CallgateError, ConfigurationError, StoreError
from callgate.gateway import Gateway

P = ParamSpec("P")
R = TypeVar("R")


out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
#: a job's or batch's id: an id past 64 bits cannot exist (a usage error, not a crash)
IdArgument = Annotated[int, typer.Argument(min=1, max=MAX_ID)]


def friendly(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn callgate errors into one line on stderr and exit 1 (2 for bad settings)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ConfigurationError as exc:
            err.print(f"callgate: {exc.message}", markup=False, highlight=False)
            raise typer.Exit(2) from None
        except CallgateError as exc:
            where = f" (field: {exc.field})" if exc.field else ""
            err.print(
                f"callgate: error [{exc.code}]{where}: {exc.message}", markup=False, highlight=False
            )
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("callgate: interrupted")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if os.environ.get("CALLGATE_DEBUG"):
                raise
            err.print(
                f"callgate: internal error: {exc!r} (set CALLGATE_DEBUG=1 for the traceback)",
                markup=False,
                highlight=False,
            )
            raise typer.Exit(70) from None

    return wrapper


def gateway() -> Gateway:
    return Gateway(load_settings())


def waiting_gateway(settings: Settings) -> Gateway:
    """A gateway for a long-running process: while the database cannot be reached, say
    why and try again (with backoff) instead of exiting into a restart loop."""
    from callgate.engine.worker import Backoff

    backoff = Backoff(first=0.5, cap=10.0)
    while True:
        try:
            return Gateway(settings)
        except StoreError as exc:
            delay = backoff.next()
            err.print(
                f"callgate: {exc.message}; trying again in {delay:.1f} s",
                markup=False,
                highlight=False,
            )
            time.sleep(delay)


def option_time(raw: str | None, field: str) -> datetime | None:
    return None if raw is None else parse_time(raw, field=field)


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
