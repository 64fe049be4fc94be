"""The interchange format: the two tables a provider exports from its billing system."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PAYER_TYPES = (
    "commercial",
    "medicare",
    "medicare_advantage",
    "medicaid",
    "self_pay",
    "workers_comp",
    "tricare_va",
    "other",
)
CLAIM_TYPES = ("professional", "institutional")
TRANSACTION_TYPES = (
    "payment",
    "adjustment",
    "denial",
    "transfer",
    "statement",
    "refund",
    "appeal",
    "fap_application",
    "fap_decision",
    "dispute_open",
    "dispute_closed",
    "payment_plan",
)
PARTIES = ("payer", "patient")
CARC_GROUPS = ("CO", "PR", "OA", "PI")
ADJUSTMENT_REASONS = (
    "contractual",
    "denial_write_off",
    "bad_debt",
    "charity",
    "small_balance",
    "administrative",
    "other",
)
FAP_DECISIONS = ("approved", "denied")
APPEAL_STEPS = ("filed", "won", "lost")
TRANSACTION_REASONS = ADJUSTMENT_REASONS + FAP_DECISIONS + APPEAL_STEPS

ColumnKind = Literal["string", "enum", "date", "money", "int"]
MAX_AMOUNT = 10_000_000_000
"""Every amount is below this many dollars: far above any claim, and low enough that its cents
are exact in a float64 and an int64 (an amount like 1e400 would otherwise become infinite)."""


@dataclass(frozen=True)
class Column:
    """One column of the interchange format: its type, whether it is required, what it means."""

    name: str
    kind: ColumnKind
    required: bool
    meaning: str
    levels: tuple[str, ...] = ()


CLAIM_COLUMNS: tuple[Column, ...] = (
    Column("claim_id", "string", True, "unique claim identifier"),
    Column(
        "patient_id",
        "string",
        True,
        "guarantor/patient key; pseudonymized (keyed HMAC) on read, the raw value is never kept",
    ),
    Column("payer_id", "string", True, "payer identifier, SELF for self-pay"),
    Column("payer_type", "enum", True, "payer category", PAYER_TYPES),
    Column("claim_type", "enum", True, "professional (837P) or institutional (837I)", CLAIM_TYPES),
    Column("place_of_service", "string", True, "CMS place-of-service code, e.g. 11, 21, 22, 23"),
    Column("service_date", "date", True, "date of service or discharge"),
    Column("billed_date", "date", True, "first submission to payer, or first statement (self-pay)"),
    Column("total_charge", "money", True, "billed charge, >= 0"),
    Column("expected_amount", "money", False, "contracted expected reimbursement, >= 0"),
    Column("patient_age", "int", False, "patient age in years at service"),
    Column("patient_state", "string", False, "two-letter state, for state rules"),
    Column("patient_zip3", "string", False, "first three digits of the ZIP code"),
)

TRANSACTION_COLUMNS: tuple[Column, ...] = (
    Column("claim_id", "string", True, "claim the event belongs to; must exist in claims"),
    Column("date", "date", True, "date of the event"),
    Column("type", "enum", True, "kind of event", TRANSACTION_TYPES),
    Column(
        "amount",
        "money",
        False,
        ">= 0; payment and adjustment lower the balance, refund raises it, "
        "transfer moves responsibility",
    ),
    Column(
        "party",
        "enum",
        False,
        "payer or patient: who paid (payment), to whom responsibility moved (transfer)",
        PARTIES,
    ),
    Column("carc_group", "enum", False, "CARC group code", CARC_GROUPS),
    Column("carc_code", "string", False, "claim adjustment reason code, e.g. 45, 16, 29"),
    Column("rarc_code", "string", False, "remittance advice remark code, e.g. N290"),
    Column(
        "reason",
        "enum",
        False,
        "adjustment: contractual..other; fap_decision: approved/denied; appeal: filed/won/lost",
        TRANSACTION_REASONS,
    ),
)

CLAIMS_FILE_STEM = "claims"
TRANSACTIONS_FILE_STEM = "transactions"


def column_names(columns: tuple[Column, ...]) -> list[str]:
    """Names of the given columns in their documented order."""
    return [column.name for column in columns]
