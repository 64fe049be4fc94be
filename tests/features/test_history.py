"""Validation of the interchange format: each error names file, row, column and expectation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.errors import ArscoreError, ValidationError
from features.history import read_history, validate_history
from tests.factories import TEST_KEY, claim_row, make_history, tx_row


def _raw(claims: list[dict], transactions: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    columns = list(tx_row("C1", "2025-01-01", "statement"))
    return pd.DataFrame(claims, dtype="object"), pd.DataFrame(
        transactions, columns=columns, dtype="object"
    )


def _problems(claims: list[dict], transactions: list[dict]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        validate_history(*_raw(claims, transactions), TEST_KEY)
    return [str(p) for p in caught.value.problems]


def test_validate_history_missing_required_column_names_it():
    claims = [claim_row("C1")]
    del claims[0]["payer_type"]
    problems = _problems(claims, [tx_row("C1", "2025-02-01", "statement")])
    assert problems == ["claims: column 'payer_type': expected a column of this name (required)"]


def test_validate_history_bad_date_names_row_and_column():
    claims = [claim_row("C1"), claim_row("C2", service_date="2025-02-30")]
    problems = _problems(claims, [tx_row("C1", "2025-02-01", "statement")])
    assert problems == ["claims: column 'service_date', row 2: expected an ISO date YYYY-MM-DD"]


def test_validate_history_bad_number_names_row():
    claims = [claim_row("C1", total_charge="12,50")]
    problems = _problems(claims, [tx_row("C1", "2025-02-01", "statement")])
    assert problems == ["claims: column 'total_charge', row 1: expected a number"]


def test_validate_history_unknown_enum_lists_allowed_values():
    transactions = [tx_row("C1", "2025-02-01", "statement"), tx_row("C1", "2025-02-03", "pay", 5)]
    problems = _problems([claim_row("C1")], transactions)
    assert len(problems) == 1
    assert problems[0].startswith("transactions: column 'type', row 2: expected one of payment,")


def test_validate_history_negative_amount_is_an_error():
    transactions = [tx_row("C1", "2025-02-01", "payment", "-10.00", party="payer")]
    problems = _problems([claim_row("C1")], transactions)
    assert problems == ["transactions: column 'amount', row 1: expected an amount >= 0"]


@pytest.mark.parametrize("amount", ["1e400", "inf", "10000000000", "12345678901.5"])
def test_validate_history_amount_too_large_or_infinite_is_an_error(amount):
    """Such an amount has no exact cents (1e400 becomes infinite); it is refused, not scored."""
    transactions = [tx_row("C1", "2025-02-01", "payment", amount, party="payer")]
    problems = _problems([claim_row("C1")], transactions)
    assert problems == [
        "transactions: column 'amount', row 1: expected an amount below 10,000,000,000"
    ]


def test_validate_history_amount_just_below_the_ceiling_is_accepted():
    transactions = [tx_row("C1", "2025-02-01", "payment", "9999999999.99", party="payer")]
    history = validate_history(*_raw([claim_row("C1")], transactions), TEST_KEY)
    assert history.transactions["amount"].iloc[0] == 9999999999.99


def test_validate_history_transaction_for_unknown_claim_is_an_error():
    transactions = [
        tx_row("C1", "2025-02-01", "statement"),
        tx_row("C9", "2025-02-01", "statement"),
    ]
    problems = _problems([claim_row("C1")], transactions)
    assert problems == [
        "transactions: column 'claim_id', row 2: expected a claim_id that exists in claims"
    ]


def test_validate_history_duplicate_claim_id_is_an_error():
    problems = _problems([claim_row("C1"), claim_row("C1")], [])
    assert problems == ["claims: column 'claim_id', row 2: expected a unique claim_id"]


def test_validate_history_many_bad_rows_shows_first_five_and_count():
    claims = [claim_row(f"C{i}", patient_age="old") for i in range(8)]
    problems = _problems(claims, [])
    assert problems == [
        "claims: column 'patient_age', rows 1, 2, 3, 4, 5 and 3 more: expected a whole number"
    ]


def test_validate_history_extra_columns_are_kept_and_ignored():
    history = make_history([claim_row("C1", facility="north")], [])
    assert history.claims.loc[0, "facility"] == "north"


def test_validate_history_patient_id_is_replaced_by_its_pseudonym():
    history = make_history([claim_row("C1", patient_id="MRN-555-1234")], [])
    assert "patient_id" not in history.claims.columns
    key = history.claims.loc[0, "patient_key"]
    assert key.startswith("pk_") and "555" not in key


def test_validate_history_same_patient_same_key_other_key_differs():
    claims = [claim_row("C1", patient_id="A"), claim_row("C2", patient_id="A")]
    claims.append(claim_row("C3", patient_id="B"))
    keys = make_history(claims, []).claims["patient_key"].tolist()
    assert keys[0] == keys[1] != keys[2]


def _write_csv(directory: Path, claims: list[dict], transactions: list[dict]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(claims).to_csv(directory / "claims.csv", index=False)
    pd.DataFrame(transactions).to_csv(directory / "transactions.csv", index=False)
    return directory


def test_read_history_csv_error_names_the_file(tmp_path):
    directory = _write_csv(
        tmp_path / "h", [claim_row("C1")], [tx_row("C1", "01/02/2025", "statement")]
    )
    with pytest.raises(ValidationError) as caught:
        read_history(directory, TEST_KEY)
    assert str(caught.value.problems[0]).startswith(f"{directory / 'transactions.csv'}: column")


def test_read_history_csv_and_parquet_give_the_same_frames(tmp_path):
    claims = [claim_row("C1"), claim_row("C2", expected_amount="", patient_age="")]
    transactions = [tx_row("C1", "2025-02-01", "payment", "10.50", party="payer")]
    from_csv = read_history(_write_csv(tmp_path / "csv", claims, transactions), TEST_KEY)
    parquet_dir = tmp_path / "parquet"
    parquet_dir.mkdir()
    from_csv.claims.assign(patient_id=["P1", "P1"]).drop(columns="patient_key").to_parquet(
        parquet_dir / "claims.parquet"
    )
    from_csv.transactions.to_parquet(parquet_dir / "transactions.parquet")
    from_parquet = read_history(parquet_dir, TEST_KEY)
    pd.testing.assert_frame_equal(from_csv.claims, from_parquet.claims)
    pd.testing.assert_frame_equal(from_csv.transactions, from_parquet.transactions)


def test_read_history_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ArscoreError, match="not a directory"):
        read_history(tmp_path / "nope", TEST_KEY)
