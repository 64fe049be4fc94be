"""Small factories for hand-built histories used across the test suite."""

from __future__ import annotations

import pandas as pd

from features.history import History, validate_history

TEST_KEY = b"test-pseudonym-key-0123456789"


def claim_row(claim_id: str = "C1", **overrides: object) -> dict[str, object]:
    """One claims row in the interchange format, as text like a CSV export."""
    row: dict[str, object] = {
        "claim_id": claim_id,
        "patient_id": "P1",
        "payer_id": "AETNA01",
        "payer_type": "commercial",
        "claim_type": "professional",
        "place_of_service": "11",
        "service_date": "2025-01-02",
        "billed_date": "2025-01-05",
        "total_charge": "1000.00",
        "expected_amount": "600.00",
        "patient_age": "45",
        "patient_state": "TX",
        "patient_zip3": "750",
    }
    row.update(overrides)
    return row


def tx_row(claim_id: str, date: str, type_: str, amount: object = None, **overrides: object):
    """One transactions row in the interchange format."""
    row: dict[str, object] = {
        "claim_id": claim_id,
        "date": date,
        "type": type_,
        "amount": None if amount is None else str(amount),
        "party": None,
        "carc_group": None,
        "carc_code": None,
        "rarc_code": None,
        "reason": None,
    }
    row.update(overrides)
    return row


def make_history(claims: list[dict], transactions: list[dict]) -> History:
    """A validated History from rows written like a user's export."""
    raw_claims = pd.DataFrame(claims, dtype="object")
    columns = list(tx_row("C1", "2025-01-01", "statement"))
    raw_transactions = pd.DataFrame(transactions, columns=columns, dtype="object")
    return validate_history(raw_claims, raw_transactions, TEST_KEY)
