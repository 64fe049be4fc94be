"""Account facts for the decision policy, derived from snapshot columns once per batch.

The derivation is vectorized (``fact_columns``: one array or series per fact, shared with the
batch path ``serving.policy.vector``); ``account_facts`` turns the columns into one ``Facts`` tuple
of plain Python values per row, so the per-account rules in ``serving.policy.rules`` stay
readable and fast.

Columns read beyond the snapshot's (all optional): ``fap_screened`` (a financial-assistance
screen was done, besides an application), ``presumptive_fap_eligible`` and ``fpl_percent``
(household income as % of the federal poverty level, from a screen) for state income floors,
``patient_pr_code`` (the PR code, 1/2/3, that moved the balance to the patient) for Medicare bad
debt, ``last_remit_carc_group``/``last_remit_carc_code`` (the last remittance CARC, adjustments
included) for contractual adjustments; without them the last denial's CARC is used.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from features.errors import ArscoreError

if TYPE_CHECKING:
    from serving.policy.config import Policy

REQUIRED_COLUMNS = (
    "open_balance",
    "payer_balance",
    "responsibility",
    "payer_type",
    "patient_state",
    "last_carc_group",
    "last_carc_code",
    "n_denials",
    "days_since_last_denial",
    "days_since_last_payment",
    "appeals_closed",
    "appeals_won",
    "appeal_open",
    "dispute_open",
    "fap_pending",
    "fap_applications",
    "fap_approved",
    "n_statements",
    "days_since_first_statement",
    "payment_plans",
    "probability_collected",
    "expected_recovery",
)
OPTIONAL_POLICY_COLUMNS = (
    "fap_screened",
    "presumptive_fap_eligible",
    "fpl_percent",
    "patient_pr_code",
    "last_remit_carc_group",
    "last_remit_carc_code",
)
"""Columns the rules read when a prepared snapshot table carries them (a history does not)."""
MODEL_OUTPUTS = ("probability_collected", "expected_recovery")


class Facts(NamedTuple):
    """What the rules need to know about one account; NaN stands for an unknown number."""

    open_balance: float
    payer_balance: float
    payer_side: bool
    payer_type: str | None
    state: str | None
    denial_carc: str | None  # "CO-50": group and code of the last denial
    denial_code: str | None  # "50"
    denial_current: bool  # payer side, and no payment since the denial
    days_since_denial: float
    appeal_lost: bool
    appeal_won: bool
    contractual_carc: str | None  # "CO-45" when the contractual rule applies, else None
    dispute_open: bool | None  # None: missing in the data (treated as open)
    appeal_open: bool | None
    fap_pending: bool | None
    fap_approved: bool
    fap_screened: bool
    fpl_percent: float
    presumptive_fap_eligible: bool
    n_statements: int
    days_since_first_statement: float
    plan_kept: bool  # a payment plan with a payment within routing.payment_plan.kept_within_days
    probability: float
    expected_recovery: float
    patient_pr_code: str | None


class FactColumns(NamedTuple):
    """The facts of every row as columns, field for field those of ``Facts``.

    Numbers and two-valued flags are numpy arrays; texts and the three flags whose missing value
    means "open" stay pandas Series with NA for missing, so that a vectorized rule sees missing
    exactly where the per-row rule sees None.
    """

    open_balance: np.ndarray
    payer_balance: np.ndarray
    payer_side: np.ndarray
    payer_type: pd.Series
    state: pd.Series
    denial_carc: pd.Series
    denial_code: pd.Series
    denial_current: np.ndarray
    days_since_denial: np.ndarray
    appeal_lost: np.ndarray
    appeal_won: np.ndarray
    contractual_carc: pd.Series
    dispute_open: pd.Series
    appeal_open: pd.Series
    fap_pending: pd.Series
    fap_approved: np.ndarray
    fap_screened: np.ndarray
    fpl_percent: np.ndarray
    presumptive_fap_eligible: np.ndarray
    n_statements: np.ndarray
    days_since_first_statement: np.ndarray
    plan_kept: np.ndarray
    probability: np.ndarray
    expected_recovery: np.ndarray
    patient_pr_code: pd.Series


def _floats(rows: pd.DataFrame, column: str) -> np.ndarray:
    values = pd.to_numeric(rows[column], errors="coerce")
    return values.to_numpy(dtype="float64", na_value=np.nan)


def _counts(rows: pd.DataFrame, column: str) -> np.ndarray:
    return np.nan_to_num(_floats(rows, column))


def _texts(rows: pd.DataFrame, column: str) -> pd.Series:
    return rows[column].astype("string").str.strip().replace("", pd.NA)


def _as_list(values: pd.Series) -> list[Any]:
    return values.astype(object).where(values.notna(), None).tolist()


def _flags(rows: pd.DataFrame, column: str) -> pd.Series:
    return rows[column].astype("boolean")


def _optional_flag(rows: pd.DataFrame, column: str) -> np.ndarray:
    if column not in rows:
        return np.zeros(len(rows), dtype=bool)
    return rows[column].astype("boolean").to_numpy(dtype=bool, na_value=False)


def _mask(values: pd.Series) -> np.ndarray:
    return values.to_numpy(dtype=bool, na_value=False)


def _carc(group: pd.Series, code: pd.Series) -> pd.Series:
    return (group.fillna("") + "-" + code).str.lstrip("-")


def _contractual(
    rows: pd.DataFrame, policy: Policy, payer_side: np.ndarray, denial_current: np.ndarray
) -> pd.Series:
    """ "CO-45" where a contractual CARC is on a payer-side balance, else NA."""
    if "last_remit_carc_code" in rows:
        group, code = _texts(rows, "last_remit_carc_group"), _texts(rows, "last_remit_carc_code")
        current = payer_side
    else:
        group, code = _texts(rows, "last_carc_group"), _texts(rows, "last_carc_code")
        current = denial_current
    applies = _mask(group == "CO") & _mask(code.isin(policy.carc.contractual)) & current
    return _carc(group, code).where(applies)


def _checked_open_balance(rows: pd.DataFrame) -> np.ndarray:
    """The open balances; raises when a column is missing or a balance is empty."""
    missing = [c for c in REQUIRED_COLUMNS if c not in rows]
    if missing:
        raise ArscoreError(f"policy input: missing column(s) {', '.join(missing)}")
    open_balance = _floats(rows, "open_balance")
    if np.isnan(open_balance).any():
        positions = np.flatnonzero(np.isnan(open_balance))[:5] + 1
        shown = ", ".join(str(p) for p in positions)
        raise ArscoreError(f"policy input: column 'open_balance' is empty in row(s) {shown}")
    return open_balance


def fact_columns(rows: pd.DataFrame, policy: Policy) -> FactColumns:
    """The facts of every row as columns; raises when a column is missing."""
    open_balance = _checked_open_balance(rows)
    payer_side = _mask(_texts(rows, "responsibility") == "payer")
    last_payment = _floats(rows, "days_since_last_payment")
    days_since_denial = _floats(rows, "days_since_last_denial")
    paid_since_denial = last_payment < days_since_denial
    denial_current = (_counts(rows, "n_denials") > 0) & payer_side & ~paid_since_denial
    group, code = _texts(rows, "last_carc_group"), _texts(rows, "last_carc_code")
    closed, won = _counts(rows, "appeals_closed"), _counts(rows, "appeals_won")
    kept_days = policy.routing.payment_plan.kept_within_days
    screened = (_counts(rows, "fap_applications") > 0) | _optional_flag(rows, "fap_screened")
    fpl = _floats(rows, "fpl_percent") if "fpl_percent" in rows else np.full(len(rows), np.nan)
    if "patient_pr_code" in rows:
        pr_code = _texts(rows, "patient_pr_code")
    else:
        pr_code = pd.Series(pd.NA, index=rows.index, dtype="string")
    return FactColumns(
        open_balance=open_balance,
        payer_balance=_counts(rows, "payer_balance"),
        payer_side=payer_side,
        payer_type=_texts(rows, "payer_type"),
        state=_texts(rows, "patient_state").str.upper(),
        denial_carc=_carc(group, code),
        denial_code=code,
        denial_current=denial_current,
        days_since_denial=days_since_denial,
        appeal_lost=closed > won,
        appeal_won=(won > 0) & (closed == won),
        contractual_carc=_contractual(rows, policy, payer_side, denial_current),
        dispute_open=_flags(rows, "dispute_open"),
        appeal_open=_flags(rows, "appeal_open"),
        fap_pending=_flags(rows, "fap_pending"),
        fap_approved=_counts(rows, "fap_approved") > 0,
        fap_screened=screened,
        fpl_percent=fpl,
        presumptive_fap_eligible=_optional_flag(rows, "presumptive_fap_eligible"),
        n_statements=_counts(rows, "n_statements").astype(int),
        days_since_first_statement=_floats(rows, "days_since_first_statement"),
        plan_kept=(_counts(rows, "payment_plans") > 0) & (last_payment <= kept_days),
        probability=_floats(rows, "probability_collected"),
        expected_recovery=_floats(rows, "expected_recovery"),
        patient_pr_code=pr_code,
    )


def _values(column: np.ndarray | pd.Series) -> list[Any]:
    """A column as plain Python values: None for a missing text or flag."""
    return _as_list(column) if isinstance(column, pd.Series) else column.tolist()


def account_facts(rows: pd.DataFrame, policy: Policy) -> Iterator[Facts]:
    """The facts of every row, in order, made one at a time; raises when a column is missing."""
    columns = [_values(column) for column in fact_columns(rows, policy)]
    return map(Facts._make, zip(*columns, strict=True))


def policy_columns(available: Sequence[str] | None = None) -> tuple[str, ...]:
    """Snapshot columns the policy reads: the required ones, and the optional ones available."""
    required = [c for c in REQUIRED_COLUMNS if c not in MODEL_OUTPUTS]
    optional = [c for c in OPTIONAL_POLICY_COLUMNS if available is not None and c in available]
    return tuple(required + optional)
