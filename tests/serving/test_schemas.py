"""The API's request schemas stay in step with the interchange format (features.schema)."""

from __future__ import annotations

import datetime as dt
import typing

import pandas as pd
import pytest
from pydantic import ValidationError

from features.history import validate_history
from features.pseudonym import pseudonymize_one
from features.schema import CLAIM_COLUMNS, TRANSACTION_COLUMNS, column_names
from serving.routers.scores import claim_record, event_records
from serving.schemas import (
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


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("service_date", "2025-1-2"),
        ("service_date", "01/02/2025"),
        ("service_date", 20250102),
        ("total_charge", -1),
        ("total_charge", "NaN"),
        ("payer_type", "medicare_b"),
        ("patient_age", 4.5),
        ("claim_id", ""),
        ("unexpected", "x"),
    ],
)
def test_score_item_invalid_value_rejected_at_its_field(field, value):
    with pytest.raises(ValidationError) as caught:
        ScoreItem.model_validate(item(**{field: value}))
    assert [e["loc"][-1] for e in caught.value.errors()] == [field]


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


def test_score_request_without_items_rejected():
    with pytest.raises(ValidationError):
        ScoreRequest.model_validate({"items": []})


def test_history_rows_refuse_booleans_and_nested_values():
    with pytest.raises(ValidationError):
        HistoryClaimRow.model_validate({"claim_id": True})
    with pytest.raises(ValidationError):
        HistoryTransactionRow.model_validate({"amount": {"value": 1}})
