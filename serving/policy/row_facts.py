"""Account facts from snapshot records (dicts), for the online path: no DataFrame.

``serving.policy.facts.fact_columns`` derives the facts of a batch with pandas column operations,
which cost ~6 ms whatever the number of rows: most of a single-claim score request. The API holds
its snapshots as dicts already, so ``facts_of_row`` derives the same ``Facts`` from one record
with scalar operations, value for value and type for type as ``account_facts`` (missing texts,
flags and numbers handled as pandas handles them there); ``tests/serving/policy/test_row_facts.py``
holds the two equal on snapshot rows and on the adversarial rows of the vectorized path's tests.

The conversions run ~30 times a record, so each first tests for the plain types a snapshot holds
(``str``, ``float``, ``int``, ``bool``, None) and only then for pandas' missing values.
"""

from __future__ import annotations

import math
import operator
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from features.errors import ArscoreError
from serving.policy.facts import REQUIRED_COLUMNS, Facts

if TYPE_CHECKING:
    from serving.policy.config import Policy

NAN = math.nan
_LARGEST = sys.float_info.max
_new_facts = tuple.__new__  # Facts from a tuple of its fields, without NamedTuple's keywords


def _missing(value: Any) -> bool:
    """None, pandas' NA and NaT, and float NaN: what pandas counts as missing."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and value != value


def _float(value: Any) -> float:
    """``pd.to_numeric(errors="coerce")`` of one value: NaN when missing or not a number."""
    if type(value) is float:
        return value if value == value else NAN
    if type(value) is int:
        return float(value)
    if _missing(value):
        return NAN
    try:
        return float(value)
    except (TypeError, ValueError):
        return NAN


def _count(value: Any) -> float:
    """``np.nan_to_num`` of ``_float``: missing counts as 0, infinities as the largest float."""
    if type(value) is int:
        return float(value)
    number = value if type(value) is float else _float(value)
    if -_LARGEST <= number <= _LARGEST:
        return number
    if number != number:
        return 0.0
    return _LARGEST if number > 0 else -_LARGEST


def _text(value: Any) -> str | None:
    """A text stripped of surrounding blanks; None when missing or blank."""
    if type(value) is str:
        return value.strip() or None
    if _missing(value):
        return None
    return str(value).strip() or None


def _flag(value: Any) -> bool | None:
    """A yes/no value; None when missing (the rules treat some missing flags as open)."""
    if type(value) is bool:
        return value
    return None if _missing(value) else bool(value)


def _carc(group: str | None, code: str | None) -> str | None:
    """ "CO-50" from a group and a code ("50" without a group); None without a code."""
    return None if code is None else f"{group or ''}-{code}".lstrip("-")


def facts_of_row(record: Mapping[str, Any], policy: Policy, position: int = 0) -> Facts:
    """The facts of one snapshot record (with the model's ``probability_collected`` and
    ``expected_recovery``); errors name the record's 1-based ``position`` in its batch."""
    contractual = frozenset(policy.carc.contractual)
    return _facts(record, position, contractual, policy.routing.payment_plan.kept_within_days)


def facts_of_rows(records: Sequence[Mapping[str, Any]], policy: Policy) -> list[Facts]:
    """``facts_of_row`` of each record, in order, with the policy's constants looked up once."""
    contractual = frozenset(policy.carc.contractual)
    kept_days = policy.routing.payment_plan.kept_within_days
    return [_facts(record, i, contractual, kept_days) for i, record in enumerate(records)]


# the required columns in the order ``_facts`` unpacks them (a test holds them to REQUIRED_COLUMNS)
COLUMNS = (
    "open_balance", "payer_balance", "responsibility", "payer_type", "patient_state",
    "last_carc_group", "last_carc_code", "n_denials", "days_since_last_denial",
    "days_since_last_payment", "appeals_closed", "appeals_won", "appeal_open", "dispute_open",
    "fap_pending", "fap_applications", "fap_approved", "n_statements",
    "days_since_first_statement", "payment_plans", "probability_collected", "expected_recovery",
)  # fmt: skip
_values = operator.itemgetter(*COLUMNS)


def _required(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """The values of the required columns (``COLUMNS``); raises naming the ones a record lacks."""
    if type(record) is dict:  # a KeyError means a missing column (not so for every Mapping)
        try:
            return _values(record)
        except KeyError:
            pass
    missing = [c for c in REQUIRED_COLUMNS if c not in record]
    if missing:
        raise ArscoreError(f"policy input: missing column(s) {', '.join(missing)}")
    return _values(record)


def _facts(
    record: Mapping[str, Any], position: int, contractual: frozenset[str], kept_days: float
) -> Facts:
    """``facts_of_row``, converting the columns in its order (so that the same one fails first)."""
    (balance, payer_balance, responsibility, payer_type, state, group, code, n_denials,
     denial_days, payment_days, closed, won, appeal_open, dispute_open, fap_pending,
     fap_applications, fap_approved, n_statements, first_days, payment_plans, probability,
     recovery) = _required(record)  # fmt: skip
    open_balance = _float(balance)
    if open_balance != open_balance:
        raise ArscoreError(f"policy input: column 'open_balance' is empty in row(s) {position + 1}")
    payer_side = _text(responsibility) == "payer"
    last_payment = _float(payment_days)
    days_since_denial = _float(denial_days)
    denial_current = _count(n_denials) > 0 and payer_side and not last_payment < days_since_denial
    group, code = _text(group), _text(code)
    closed, won = _count(closed), _count(won)
    state = _text(state)
    payer_balance = _count(payer_balance)
    payer_type = _text(payer_type)
    if "last_remit_carc_code" in record:  # the contractual CARC: the last remittance's, if known
        remit_group = _text(record.get("last_remit_carc_group"))
        remit_code = _text(record["last_remit_carc_code"])
        applies = remit_group == "CO" and remit_code in contractual and payer_side
        contractual_carc = _carc(remit_group, remit_code) if applies else None
    else:
        applies = group == "CO" and code in contractual and denial_current
        contractual_carc = _carc(group, code) if applies else None
    fields = (
        open_balance,
        payer_balance,
        payer_side,
        payer_type,
        None if state is None else state.upper(),
        _carc(group, code),
        code,
        denial_current,
        days_since_denial,
        closed > won,
        won > 0 and closed == won,
        contractual_carc,
        _flag(dispute_open),
        _flag(appeal_open),
        _flag(fap_pending),
        _count(fap_approved) > 0,
        _count(fap_applications) > 0 or bool(_flag(record.get("fap_screened"))),
        _float(record.get("fpl_percent")),
        bool(_flag(record.get("presumptive_fap_eligible"))),
        int(_count(n_statements)),
        _float(first_days),
        _count(payment_plans) > 0 and last_payment <= kept_days,
        _float(probability),
        _float(recovery),
        _text(record.get("patient_pr_code")),
    )
    return _new_facts(Facts, fields)
