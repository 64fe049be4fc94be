"""Account facts from snapshot records (dicts), for the online path: no DataFrame.

``serving.policy_facts.fact_columns`` derives the facts of a batch with pandas column operations,
which cost ~6 ms whatever the number of rows: most of a single-claim score request. The API holds
its snapshots as dicts already, so ``record_facts`` derives the same ``Facts`` from one record
with scalar operations, value for value and type for type as ``account_facts`` (missing texts,
flags and numbers handled as pandas handles them there); ``tests/serving/test_policy_records.py``
holds the two equal on snapshot rows and on the adversarial rows of the vectorized path's tests.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from features.errors import ArscoreError
from serving.policy_facts import REQUIRED_COLUMNS, Facts

if TYPE_CHECKING:
    from serving.policy import Policy

NAN = math.nan
_LARGEST = sys.float_info.max


def _missing(value: Any) -> bool:
    """None, pandas' NA and NaT, and float NaN: what pandas counts as missing."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and value != value


def _float(value: Any) -> float:
    """``pd.to_numeric(errors="coerce")`` of one value: NaN when missing or not a number."""
    if _missing(value):
        return NAN
    try:
        return float(value)
    except (TypeError, ValueError):
        return NAN


def _count(value: Any) -> float:
    """``np.nan_to_num`` of ``_float``: missing counts as 0, infinities as the largest float."""
    number = _float(value)
    if number != number:
        return 0.0
    if math.isinf(number):
        return _LARGEST if number > 0 else -_LARGEST
    return number


def _text(value: Any) -> str | None:
    """A text stripped of surrounding blanks; None when missing or blank."""
    if _missing(value):
        return None
    return str(value).strip() or None


def _flag(value: Any) -> bool | None:
    """A yes/no value; None when missing (the rules treat some missing flags as open)."""
    return None if _missing(value) else bool(value)


def _carc(group: str | None, code: str | None) -> str | None:
    """ "CO-50" from a group and a code ("50" without a group); None without a code."""
    return None if code is None else f"{group or ''}-{code}".lstrip("-")


def _contractual(
    record: Mapping[str, Any], policy: Policy, payer_side: bool, denial_current: bool
) -> str | None:
    if "last_remit_carc_code" in record:
        group = _text(record.get("last_remit_carc_group"))
        code = _text(record["last_remit_carc_code"])
        current = payer_side
    else:
        group, code = _text(record["last_carc_group"]), _text(record["last_carc_code"])
        current = denial_current
    applies = group == "CO" and code in policy.carc.contractual and current
    return _carc(group, code) if applies else None


def record_facts(record: Mapping[str, Any], policy: Policy, position: int = 0) -> Facts:
    """The facts of one snapshot record (with the model's ``probability_collected`` and
    ``expected_recovery``); errors name the record's 1-based ``position`` in its batch."""
    missing = [c for c in REQUIRED_COLUMNS if c not in record]
    if missing:
        raise ArscoreError(f"policy input: missing column(s) {', '.join(missing)}")
    open_balance = _float(record["open_balance"])
    if open_balance != open_balance:
        raise ArscoreError(f"policy input: column 'open_balance' is empty in row(s) {position + 1}")
    payer_side = _text(record["responsibility"]) == "payer"
    last_payment = _float(record["days_since_last_payment"])
    days_since_denial = _float(record["days_since_last_denial"])
    denial_current = (
        _count(record["n_denials"]) > 0 and payer_side and not last_payment < days_since_denial
    )
    group, code = _text(record["last_carc_group"]), _text(record["last_carc_code"])
    closed, won = _count(record["appeals_closed"]), _count(record["appeals_won"])
    state = _text(record["patient_state"])
    kept_days = policy.routing.payment_plan.kept_within_days
    return Facts(
        open_balance=open_balance,
        payer_balance=_count(record["payer_balance"]),
        payer_side=payer_side,
        payer_type=_text(record["payer_type"]),
        state=None if state is None else state.upper(),
        denial_carc=_carc(group, code),
        denial_code=code,
        denial_current=denial_current,
        days_since_denial=days_since_denial,
        appeal_lost=closed > won,
        appeal_won=won > 0 and closed == won,
        contractual_carc=_contractual(record, policy, payer_side, denial_current),
        dispute_open=_flag(record["dispute_open"]),
        appeal_open=_flag(record["appeal_open"]),
        fap_pending=_flag(record["fap_pending"]),
        fap_approved=_count(record["fap_approved"]) > 0,
        fap_screened=_count(record["fap_applications"]) > 0
        or bool(_flag(record.get("fap_screened"))),
        fpl_percent=_float(record.get("fpl_percent")),
        presumptive_fap_eligible=bool(_flag(record.get("presumptive_fap_eligible"))),
        n_statements=int(_count(record["n_statements"])),
        days_since_first_statement=_float(record["days_since_first_statement"]),
        plan_kept=_count(record["payment_plans"]) > 0 and last_payment <= kept_days,
        probability=_float(record["probability_collected"]),
        expected_recovery=_float(record["expected_recovery"]),
        patient_pr_code=_text(record.get("patient_pr_code")),
    )
