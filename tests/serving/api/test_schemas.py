"""The API's request schemas stay in step with the interchange format (features.schema)."""

from __future__ import annotations

import datetime as dt
import json
import typing
from decimal import Decimal

import pandas as pd
import pytest
from pydantic import ValidationError

from features.history import validate_history
from features.pseudonym import pseudonymize_one
from features.schema import CLAIM_COLUMNS, TRANSACTION_COLUMNS, column_names
from serving.api.routers.scores import claim_record, event_records
from serving.api.schemas import (
    ClaimIn,
    HistoryClaimRow,
    HistoryTransactionRow,
    ScoreItem,
    ScoreRequest,
    TransactionIn,
)
from tests.factories import TEST_KEY, claim_row, tx_row


def _levels(model: type, field: str) -> set[str]:
    """The literal values a field accepts (None excluded)."""

    def walk(annotation: object) -> set[str]:
        if typing.get_origin(annotation) is typing.Literal:
            return {v for v in typing.get_args(annotation) if isinstance(v, str)}
        return set().union(*(walk(a) for a in typing.get_args(annotation)))

    return walk(model.model_fields[field].annotation)


def item(**overrides: object) -> dict:
    """A valid score item as JSON would carry it."""
    body = {k: v for k, v in claim_row("C1", patient_id="P-77").items()}
    body["transactions"] = [
        {k: v for k, v in tx_row("C1", "2025-02-01", "payment", "300.10", party="payer").items()}
    ]
    body.update(overrides)
    return body


def from_json(raw: dict) -> ScoreItem:
    """A score item parsed as ``/v1/scores`` parses it: from JSON bytes (the paths in Rust)."""
    return ScoreItem.model_validate_json(json.dumps(raw))


EITHER_PARSER = pytest.mark.parametrize(
    "parse", [ScoreItem.model_validate, from_json], ids=["python", "json"]
)
ISO_DATE_ERROR = "Value error, expected an ISO date YYYY-MM-DD"


def test_claim_schema_fields_equal_interchange_claim_columns():
    assert list(ClaimIn.model_fields) == column_names(CLAIM_COLUMNS)
    assert list(HistoryClaimRow.model_fields) == column_names(CLAIM_COLUMNS)


def test_transaction_schema_fields_equal_interchange_transaction_columns():
    assert list(TransactionIn.model_fields) == column_names(TRANSACTION_COLUMNS)
    assert list(HistoryTransactionRow.model_fields) == column_names(TRANSACTION_COLUMNS)


def test_claim_schema_required_fields_equal_required_columns():
    required = {name for name, field in ClaimIn.model_fields.items() if field.is_required()}
    assert required == {c.name for c in CLAIM_COLUMNS if c.required}


@pytest.mark.parametrize(
    ("model", "columns"), [(ClaimIn, CLAIM_COLUMNS), (TransactionIn, TRANSACTION_COLUMNS)]
)
def test_enum_fields_accept_exactly_the_interchange_levels(model, columns):
    for column in columns:
        if column.kind == "enum":
            assert _levels(model, column.name) == set(column.levels), column.name


def test_score_item_parsed_values_equal_validate_history_values():
    """A claim sent to /v1/scores reaches the model with the values a file row would have."""
    raw = item(total_charge="1000.07", expected_amount=" ", patient_state=" TX ", patient_age="45")
    parsed = ScoreItem.model_validate(raw)
    claims = pd.DataFrame([{k: v for k, v in raw.items() if k not in ("transactions", "as_of")}])
    transactions = pd.DataFrame([{**t, "claim_id": "C1"} for t in raw["transactions"]])
    history = validate_history(claims.astype(object), transactions.astype(object), TEST_KEY)
    expected = history.claims.iloc[0]
    record = claim_record(parsed, pseudonymize_one(parsed.patient_id, TEST_KEY))
    assert record.patient_key == expected["patient_key"]
    assert record.total_charge == expected["total_charge"]
    assert record.expected_amount is None and pd.isna(expected["expected_amount"])
    assert record.patient_state == expected["patient_state"] == "TX"
    assert record.patient_age == expected["patient_age"] == 45
    assert record.service_date == expected["service_date"].date()
    (event,) = event_records(parsed)
    assert event.amount == history.transactions.iloc[0]["amount"] == 300.10
    assert event.date == history.transactions.iloc[0]["date"].date()


@EITHER_PARSER
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("service_date", "2025-1-2"),
        ("service_date", "01/02/2025"),
        ("service_date", 20250102),
        ("service_date", 1735689600),
        ("service_date", "1735689600"),
        ("service_date", "2025-01-02T00:00:00"),
        ("service_date", "2025-01-02 00:00"),
        ("service_date", "2025-02-30"),
        ("service_date", "\u0662\u0660\u0662\u0665-\u0660\u0661-\u0660\u0662"),
        ("total_charge", -1),
        ("total_charge", "NaN"),
        ("total_charge", "1e400"),
        ("total_charge", 10_000_000_000),
        ("expected_amount", -1),
        ("expected_amount", "1e400"),
        ("expected_amount", 1e10),
        ("expected_amount", "abc"),
        ("expected_amount", True),
        ("payer_type", "medicare_b"),
        ("patient_age", 4.5),
        ("claim_id", ""),
        ("patient_state", 5),
        ("patient_state", " " + "x" * 65),
        ("unexpected", "x"),
    ],
)
def test_score_item_invalid_value_rejected_at_its_field(parse, field, value):
    with pytest.raises(ValidationError) as caught:
        parse(item(**{field: value}))
    assert [e["loc"] for e in caught.value.errors()] == [(field,)]


@EITHER_PARSER
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("date", "2025-02-01T00:00:00"),
        ("date", None),
        ("amount", -0.5),
        ("amount", "1e400"),
        ("amount", "1,000"),
        ("party", "PAYER"),
        ("party", 1),
        ("carc_group", "\u3000XX"),
        ("carc_code", "x" * 65),
        ("reason", "because"),
    ],
)
def test_score_item_invalid_transaction_value_rejected_at_its_field(parse, field, value):
    raw = item()
    raw["transactions"][0][field] = value
    with pytest.raises(ValidationError) as caught:
        parse(raw)
    assert [e["loc"] for e in caught.value.errors()] == [("transactions", 0, field)]


@EITHER_PARSER
@pytest.mark.parametrize("value", ["2025-01-02T00:00:00", "86400", 86400, "", None, [2025]])
def test_score_item_non_iso_date_refused_with_iso_date_message(parse, value):
    with pytest.raises(ValidationError) as caught:
        parse(item(billed_date=value))
    errors = [(e["type"], e["loc"], e["msg"]) for e in caught.value.errors()]
    assert errors == [("value_error", ("billed_date",), ISO_DATE_ERROR)]


@pytest.mark.parametrize(
    ("where", "field", "value"),
    [
        ("claim", "service_date", " 2025-01-02\n"),
        ("claim", "service_date", "\x1c2025-01-02\u3000"),
        ("claim", "service_date", "2024-02-29"),
        ("claim", "service_date", "0001-01-01"),
        ("claim", "expected_amount", 100.0),
        ("claim", "expected_amount", 8.0000152587890625),
        ("claim", "expected_amount", 9_999_999_999),
        ("claim", "expected_amount", -0.0),
        ("claim", "expected_amount", " 12.50 "),
        ("claim", "expected_amount", "1_000"),
        ("claim", "expected_amount", "\t"),
        ("claim", "expected_amount", None),
        ("claim", "patient_state", " TX "),
        ("claim", "patient_state", "\x1cTX\x1f"),
        ("claim", "patient_state", "T X"),
        ("claim", "patient_state", "\u2003"),
        ("claim", "patient_zip3", "x" * 64 + "\x1f"),
        ("transaction", "claim_id", " C1 "),
        ("transaction", "claim_id", "\x1cC1"),
        ("transaction", "claim_id", ""),
        ("transaction", "amount", 0.1),
        ("transaction", "amount", 7),
        ("transaction", "amount", "  "),
        ("transaction", "party", " payer "),
        ("transaction", "party", "\x1dpatient"),
        ("transaction", "carc_group", ""),
        ("transaction", "reason", None),
    ],
)
def test_score_item_json_value_parsed_as_the_python_rules_parse_it(where, field, value):
    """JSON takes paths in Rust: they must give what the Python rules give, to the repr."""
    raw = item()
    (raw if where == "claim" else raw["transactions"][0])[field] = value
    assert repr(from_json(raw)) == repr(ScoreItem.model_validate(raw))


def test_score_item_json_blank_optionals_are_missing():
    raw = item(expected_amount=" ", patient_state="", patient_zip3="\t\x1c")
    raw["transactions"][0].update(
        amount="", party=" ", carc_group="\u3000", carc_code="", rarc_code="\x1f", reason=" "
    )
    parsed = from_json(raw)
    (transaction,) = parsed.transactions
    assert parsed.expected_amount is parsed.patient_state is parsed.patient_zip3 is None
    assert transaction.amount is transaction.party is transaction.carc_group is None
    assert transaction.carc_code is transaction.rarc_code is transaction.reason is None


def test_score_item_json_optional_text_stripped():
    raw = item(patient_state=" TX ", patient_zip3="\x1c750\x1f")
    raw["transactions"][0].update(claim_id=" C1 ", party="\tpayer\n", carc_code=" 45 ")
    parsed = from_json(raw)
    (transaction,) = parsed.transactions
    assert (parsed.patient_state, parsed.patient_zip3) == ("TX", "750")
    assert (transaction.claim_id, transaction.party, transaction.carc_code) == ("C1", "payer", "45")


def test_score_item_json_optional_amount_is_decimal_of_the_float_repr():
    raw = item(expected_amount=100.0)
    raw["transactions"][0]["amount"] = 8.0000152587890625
    parsed = from_json(raw)
    assert repr(parsed.expected_amount) == repr(Decimal("100.0"))
    assert repr(parsed.transactions[0].amount) == repr(Decimal("8.000015258789062"))
    assert repr(from_json(item(expected_amount=3)).expected_amount) == repr(Decimal(3))


def test_score_item_python_date_accepted_datetime_refused():
    parsed = ScoreItem.model_validate(item(service_date=dt.date(2025, 1, 2)))
    assert parsed.service_date == dt.date(2025, 1, 2)
    with pytest.raises(ValidationError) as caught:
        ScoreItem.model_validate(item(service_date=dt.datetime(2025, 1, 2)))
    errors = [(e["loc"], e["msg"]) for e in caught.value.errors()]
    assert errors == [(("service_date",), ISO_DATE_ERROR)]


def test_score_item_transaction_of_another_claim_rejected():
    raw = item()
    raw["transactions"][0]["claim_id"] = "C2"
    with pytest.raises(ValidationError, match="expected this item's claim_id"):
        ScoreItem.model_validate(raw)


def test_score_item_repr_leaves_out_patient_id():
    parsed = ScoreItem.model_validate(item(patient_id="PATIENT-SECRET-9"))
    assert "PATIENT-SECRET-9" not in repr(parsed)
    assert "PATIENT-SECRET-9" not in str(ScoreRequest(items=[parsed]))


def test_score_request_as_of_accepts_iso_date_only():
    assert ScoreRequest.model_validate({"items": [item()], "as_of": "2025-06-30"}).as_of == (
        dt.date(2025, 6, 30)
    )
    with pytest.raises(ValidationError):
        ScoreRequest.model_validate({"items": [item()], "as_of": "2025-06-30T10:00:00"})


def test_score_request_json_as_of_accepts_iso_date_only():
    def parse(as_of: object) -> ScoreRequest:
        return ScoreRequest.model_validate_json(json.dumps({"items": [item()], "as_of": as_of}))

    assert parse(" 2025-06-30 ").as_of == dt.date(2025, 6, 30)
    assert parse(None).as_of is None
    for refused in ("2025-06-30T00:00:00", "1751241600", 1751241600):
        with pytest.raises(ValidationError) as caught:
            parse(refused)
        errors = [(e["loc"], e["msg"]) for e in caught.value.errors()]
        assert errors == [(("as_of",), ISO_DATE_ERROR)]


def test_score_request_without_items_rejected():
    with pytest.raises(ValidationError):
        ScoreRequest.model_validate({"items": []})


def test_history_rows_refuse_booleans_and_nested_values():
    with pytest.raises(ValidationError):
        HistoryClaimRow.model_validate({"claim_id": True})
    with pytest.raises(ValidationError):
        HistoryTransactionRow.model_validate({"amount": {"value": 1}})
