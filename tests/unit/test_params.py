"""Twilio's own parameters passed through: the names are the installed SDK's, refused
names say which ones are valid, and a campaign file in the seed's format (Twilio's
parameter names as its header) is accepted whole."""

from __future__ import annotations

import inspect
import io
import re

import pytest
from twilio.rest.api.v2010.account.call import CallList
from twilio.rest.api.v2010.account.message import MessageList

from callgate.batches.parse import read_rows
from callgate.batches.rows import RowMapper, ValidRow, validate_rows
from callgate.domain import Kind, make_spec
from callgate.domain.params import TWILIO_PARAMS, check_params, passed_through
from callgate.exceptions import ValidationError
from callgate.providers.twilio import sdk_argument

#: "Name": keyword in the SDK's ``values.of({...})`` of each create call
SDK_PAIR = re.compile(r'"([A-Z][A-Za-z0-9]*)":\s*(?:serialize\.\w+\(\s*)?([a-z_0-9]+)')


def sdk_parameters(cls: type) -> dict[str, str]:
    source = inspect.getsource(cls._create_async)  # type: ignore[attr-defined]
    start = source.index("values.of(")
    return dict(SDK_PAIR.findall(source[start : source.index("headers = ", start)]))


@pytest.mark.parametrize(("kind", "cls"), [(Kind.SMS, MessageList), (Kind.CALL, CallList)])
def test_the_names_are_the_sdks_and_map_onto_its_keywords(kind: Kind, cls: type) -> None:
    sdk = sdk_parameters(cls)
    assert len(sdk) > 20
    assert set(sdk) == TWILIO_PARAMS[kind]  # a new SDK with other names fails here
    assert {name: sdk_argument(name) for name in sdk} == sdk


def test_an_unknown_name_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(ValidationError) as info:
        check_params(Kind.SMS, {"MessagingServiceSID": "MG1"})
    assert (info.value.code, info.value.field) == ("unknown_param", "params.MessagingServiceSID")
    assert "MessagingServiceSid" in info.value.message
    assert "ValidityPeriod" in info.value.message
    with pytest.raises(ValidationError) as info:
        check_params(Kind.SMS, {"MachineDetection": "Enable"})  # a call's, not a message's
    assert info.value.code == "unknown_param"
    assert "MachineDetection" in passed_through(Kind.CALL)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"StatusCallbackEvent": ["completed"]}, "reserved_param"),  # callgate's own
        ({"To": "+12125550100"}, "unknown_param"),  # the job's field, not a parameter
        ({"ValidityPeriod": {"a": 1}}, "invalid_request"),
        ({"MaxPrice": float("nan")}, "invalid_request"),
    ],
)
def test_what_callgate_owns_and_bad_values_are_refused(params: dict[str, object], code: str):
    kind = Kind.CALL if "StatusCallbackEvent" in params else Kind.SMS
    with pytest.raises(ValidationError) as info:
        check_params(kind, params)
    assert info.value.code == code
    assert str(info.value.field).startswith("params.")


def test_specs_carry_the_parameters_as_given() -> None:
    spec = make_spec(
        "sms",
        to="+12125550100",
        params={"ContentSid": "HX" + "1" * 32, "ContentVariables": '{"1":"Ana"}', "Attempt": 2},
    )  # a template needs no body
    assert spec.payload["params"]["Attempt"] == 2
    call = make_spec("call", to="+12125550100", params={"ApplicationSid": "AP" + "2" * 32})
    assert "url" not in call.payload
    assert "twiml" not in call.payload
    with pytest.raises(ValidationError) as info:
        make_spec("call", to="+12125550100", twiml="<Response/>", params={"ApplicationSid": "AP1"})
    assert info.value.code == "missing_field"  # one of twiml, url or an application
    with pytest.raises(ValidationError):
        make_spec("fax", to="+12125550100", media_url="https://e.org/a.pdf", params={"A": 1})


SEED_CSV = (
    "To,MessagingServiceSid,ContentSid,ContentVariables,ValidityPeriod,SendAt,ScheduleType,"
    "ShortenUrls,Attempt\n"
    '+12125550100,MG{s},HX{t},"{{""1"":""Ana""}}",3600,2026-12-24T09:00:00Z,fixed,true,1\n'
    "+12125550101,MG{s},HX{t},,600,,,,\n"
).format(s="a" * 32, t="b" * 32)


def test_the_seeds_format_with_twilios_parameters_is_accepted_whole() -> None:
    rows = list(validate_rows(read_rows(io.BytesIO(SEED_CSV.encode()), "csv"), RowMapper("sms")))
    assert all(isinstance(r, ValidRow) for r in rows), rows
    first, second = (r.spec for r in rows if isinstance(r, ValidRow))
    assert first.payload["params"] == {
        "MessagingServiceSid": "MG" + "a" * 32,
        "ContentSid": "HX" + "b" * 32,
        "ContentVariables": '{"1":"Ana"}',
        "ValidityPeriod": "3600",
        "SendAt": "2026-12-24T09:00:00Z",
        "ScheduleType": "fixed",
        "ShortenUrls": "true",
        "Attempt": "1",
    }
    assert set(second.payload["params"]) == {"MessagingServiceSid", "ContentSid", "ValidityPeriod"}


def test_an_unknown_column_names_the_valid_ones_and_a_wrong_kinds_parameter_its_column():
    csv = "To,Body,Sender\n+12125550100,hi,+15005550006\n"
    [row] = validate_rows(read_rows(io.BytesIO(csv.encode()), "csv"), RowMapper("sms"))
    assert not isinstance(row, ValidRow)
    assert (row.line, row.column, row.code) == (2, "Sender", "unknown_column")
    assert "MessagingServiceSid" in row.message
    assert "idempotency_key" in row.message
    csv = "To,Body,MachineDetection\n+12125550100,hi,Enable\n"
    [row] = validate_rows(read_rows(io.BytesIO(csv.encode()), "csv"), RowMapper("sms"))
    assert not isinstance(row, ValidRow)
    assert (row.column, row.code) == ("MachineDetection", "unknown_param")
