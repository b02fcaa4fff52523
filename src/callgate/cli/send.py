"""``callgate send fax|sms|call``: submit one job."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from callgate.cli.common import (
    JsonFlag,
    friendly,
    gateway,
    option_time,
    out,
    print_json,
)
from callgate.domain import Kind, Status

send_app = typer.Typer(help="Submit one job.", no_args_is_help=True)

# -- send ------------------------------------------------------------------------------

IdemKey = Annotated[str | None, typer.Option(help="Same key, same job: safe to repeat.")]
NotBefore = Annotated[str | None, typer.Option(help="Do not send before (ISO 8601).")]
ExpiresAt = Annotated[str | None, typer.Option(help="Give up if not sent by (ISO 8601).")]
Strict = Annotated[
    bool, typer.Option(help="Keep the number's other jobs waiting while this one retries.")
]


def _submit(kind: Kind, as_json: bool, common: dict[str, Any], **fields: Any) -> None:
    with gateway() as gw:
        result = gw.send(
            kind,
            idempotency_key=common["idempotency_key"],
            not_before=option_time(common["not_before"], "not_before"),
            expires_at=option_time(common["expires_at"], "expires_at"),
            strict_order=common["strict_order"],
            **fields,
        )
    job = result.job
    if as_json:
        print_json(job.to_dict() | {"created": result.created})
    else:
        note = "" if result.created else " (already submitted with this idempotency key)"
        out.print(f"job {job.id}: {job.kind} to {job.to} is {job.status}{note}")
        if job.status in (Status.BLOCKED, Status.HELD) and job.detail:
            out.print(f"why [{job.reason}]: {job.detail}", markup=False)


@send_app.command("fax")
@friendly
def send_fax(
    to: Annotated[str, typer.Option(help="Fax number, E.164 (+15551234567).")],
    media_url: Annotated[str, typer.Option(help="http(s) URL of the PDF to send.")],
    idempotency_key: IdemKey = None,
    not_before: NotBefore = None,
    expires_at: ExpiresAt = None,
    strict_order: Strict = False,
    as_json: JsonFlag = False,
) -> None:
    """Queue a fax."""
    _submit(Kind.FAX, as_json, locals(), to=to, media_url=media_url)


@send_app.command("sms")
@friendly
def send_sms(
    to: Annotated[str, typer.Option(help="Mobile number, E.164.")],
    body: Annotated[str | None, typer.Option(help="Message text.")] = None,
    media_url: Annotated[str | None, typer.Option(help="http(s) URL of media (MMS).")] = None,
    idempotency_key: IdemKey = None,
    not_before: NotBefore = None,
    expires_at: ExpiresAt = None,
    strict_order: Strict = False,
    as_json: JsonFlag = False,
) -> None:
    """Queue an SMS (or MMS)."""
    _submit(Kind.SMS, as_json, locals(), to=to, body=body, media_url=media_url)


@send_app.command("call")
@friendly
def send_call(
    to: Annotated[str, typer.Option(help="Phone number, E.164.")],
    twiml: Annotated[str | None, typer.Option(help="TwiML for the call.")] = None,
    url: Annotated[str | None, typer.Option(help="URL that returns TwiML.")] = None,
    idempotency_key: IdemKey = None,
    not_before: NotBefore = None,
    expires_at: ExpiresAt = None,
    strict_order: Strict = False,
    as_json: JsonFlag = False,
) -> None:
    """Queue a voice call."""
    _submit(Kind.CALL, as_json, locals(), to=to, twiml=twiml, url=url)
