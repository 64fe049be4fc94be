"""Reasons a person can read: the features that moved a score most, in plain language.

Contributions are LightGBM's exact TreeSHAP values (``pred_contrib``) on the classifier's raw
margin (log-odds before calibration; calibration is increasing, so a positive contribution
raises the calibrated probability too). Only features the model used for this row can carry a
non-zero contribution, so reasons never come from a generic checklist; up to four are given,
largest absolute contribution first, in the spirit of ECOA/Reg B adverse-action notices.
Values are shown as a person reads them (dollars, days, yes/no, code meanings) and never
include a patient identifier.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.money import usd
from features.snapshots import AGING_EDGES

Direction = Literal["raises", "lowers"]
MAX_REASONS = 4

PAYER_TYPE_LABELS = {
    "commercial": "a commercial insurer",
    "medicare": "Medicare",
    "medicare_advantage": "Medicare Advantage",
    "medicaid": "Medicaid",
    "self_pay": "self-pay (no insurer)",
    "workers_comp": "workers' compensation",
    "tricare_va": "TRICARE/VA",
    "other": "another payer",
}
CLAIM_TYPE_LABELS = {"professional": "professional (837P)", "institutional": "institutional (837I)"}
PLACE_OF_SERVICE_LABELS = {
    "11": "office",
    "19": "off-campus outpatient hospital",
    "21": "inpatient hospital",
    "22": "on-campus outpatient hospital",
    "23": "emergency room",
}
CARC_MEANINGS = {
    "1": "deductible",
    "2": "coinsurance",
    "3": "copay",
    "15": "authorization number missing",
    "16": "missing information",
    "22": "coordination of benefits",
    "27": "coverage ended",
    "29": "timely filing limit passed",
    "45": "charge above the contracted amount",
    "50": "not medically necessary",
    "96": "non-covered charge",
    "97": "bundled into another service",
    "197": "no precertification",
}


@dataclass(frozen=True)
class Reason:
    """One reason: which feature, its value as shown, which way it moved the score, how much."""

    feature: str
    value: str
    direction: Direction
    contribution: float
    sentence: str


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def day_range(days: float) -> str:
    """The aging range a number of days falls in, as a person says it."""
    edges = (0, *AGING_EDGES)
    for low, high in zip(edges, edges[1:], strict=False):
        if days <= high:
            return "30 days or less" if low == 0 else f"{low + 1} to {high} days"
    return f"over {AGING_EDGES[-1]} days"


@dataclass(frozen=True)
class _Wording:
    """How one feature is shown: kind of value, phrase with {v}, phrase when missing."""

    kind: Literal["money", "days", "count", "flag", "share", "category"]
    phrase: str
    missing: str = ""
    labels: dict[str, str] | None = None


def _w(kind: Any, phrase: str, missing: str = "", labels: dict[str, str] | None = None) -> _Wording:
    return _Wording(kind, phrase, missing, labels)


WORDING: dict[str, _Wording] = {
    "open_balance": _w("money", "open balance is {v}"),
    "collectible_balance": _w("money", "collectible balance is {v}"),
    "patient_balance": _w("money", "patient owes {v} on this claim"),
    "payer_balance": _w("money", "payer owes {v} on this claim"),
    "total_charge": _w("money", "billed charge is {v}"),
    "expected_amount": _w(
        "money", "contracted expected amount is {v}", "no contracted expected amount on file"
    ),
    "paid_to_date": _w("money", "{v} paid so far"),
    "payer_paid": _w("money", "payer has paid {v}"),
    "patient_paid": _w("money", "patient has paid {v}"),
    "contractual_adjusted": _w("money", "contractual adjustments total {v}"),
    "other_adjusted": _w("money", "other adjustments total {v}"),
    "refunded": _w("money", "refunds total {v}"),
    "patient_prior_patient_balance": _w("money", "patient owes {v} on other claims"),
    "days_since_service": _w("days", "balance is {v} old"),
    "days_since_billed": _w("days", "claim was billed {v} ago"),
    "days_since_last_payment": _w("days", "last payment was {v} ago", "no payment received yet"),
    "days_since_last_statement": _w(
        "days", "last statement went out {v} ago", "no statement sent yet"
    ),
    "days_since_last_denial": _w("days", "last denial was {v} ago", "claim was never denied"),
    "days_since_first_statement": _w(
        "days", "first statement went out {v} ago", "no statement sent yet"
    ),
    "patient_days_since_last_payment": _w(
        "days", "patient last paid on any claim {v} ago", "patient has no payment on record"
    ),
    "n_denials": _w("count", "claim was denied {v}"),
    "n_statements": _w("count", "{v} sent"),
    "n_payments": _w("count", "{v} received"),
    "n_patient_payments": _w("count", "patient made {v}"),
    "appeals_filed": _w("count", "{v} filed"),
    "appeals_won": _w("count", "{v} won"),
    "fap_applications": _w("count", "{v} filed"),
    "fap_approved": _w("count", "{v} on record"),
    "disputes_opened": _w("count", "{v} opened"),
    "payment_plans": _w("count", "{v} set up"),
    "patient_prior_claims": _w("count", "patient has {v}"),
    "patient_prior_bad_debts": _w("count", "patient has {v}"),
    "appeal_open": _w("flag", "an appeal is open|no appeal is open"),
    "dispute_open": _w("flag", "a billing dispute is open|no billing dispute is open"),
    "fap_pending": _w(
        "flag",
        "a financial-assistance application is pending|no financial-assistance application pending",
    ),
    "adjudicated": _w(
        "flag", "payer has adjudicated the claim|payer has not adjudicated the claim yet"
    ),
    "patient_prior_share_paid": _w(
        "share", "patient paid {v} of earlier balances", "patient has no earlier balances"
    ),
    "payer_type": _w("category", "payer is {v}", "payer type unknown", PAYER_TYPE_LABELS),
    "claim_type": _w("category", "claim is {v}", "claim type unknown", CLAIM_TYPE_LABELS),
    "place_of_service": _w("category", "place of service is {v}", "place of service unknown"),
    "last_carc_code": _w("category", "last denial code is {v}", "no denial code on the claim"),
    "aging_bucket": _w("category", "balance is in the {v} aging bucket"),
    "patient_state": _w("category", "patient's state is {v}", "patient's state unknown"),
    "responsibility": _w("category", "balance is owed by the {v}"),
}
COUNT_NOUNS = {
    "n_denials": "time",
    "n_statements": "statement",
    "n_payments": "payment",
    "n_patient_payments": "payment",
    "appeals_filed": "appeal",
    "appeals_won": "appeal",
    "fap_applications": "financial-assistance application",
    "fap_approved": "financial-assistance approval",
    "disputes_opened": "dispute",
    "payment_plans": "payment plan",
    "patient_prior_claims": "other claim",
    "patient_prior_bad_debts": "earlier bad-debt write-off",
}


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _category_text(feature: str, value: Any, labels: dict[str, str] | None) -> str:
    code = str(value)
    if feature == "place_of_service":
        meaning = PLACE_OF_SERVICE_LABELS.get(code)
        return f"{code} ({meaning})" if meaning else code
    if feature == "last_carc_code":
        meaning = CARC_MEANINGS.get(code)
        return f"CARC {code} ({meaning})" if meaning else f"CARC {code}"
    if feature == "aging_bucket":
        return f"{code} days"
    return (labels or {}).get(code, code)


def describe(feature: str, value: Any) -> tuple[str, str, str]:
    """(value as shown, phrase about it, qualifier for the sentence) of one feature value."""
    wording = WORDING.get(feature)
    if wording is None:
        shown = "none" if _missing(value) else str(value)
        return shown, f"{feature.replace('_', ' ')} is {shown}", "this"
    if _missing(value):
        if wording.kind == "flag":
            value = False
        elif wording.kind == "count":
            value = 0
        else:
            return "none", wording.missing or f"{feature.replace('_', ' ')} unknown", "this"
    if wording.kind == "money":
        shown = usd(float(value))
    elif wording.kind == "days":
        days = float(value)
        shown = _plural(int(days), "day")
        return shown, wording.phrase.format(v=shown), day_range(days)
    elif wording.kind == "count":
        shown = str(int(value))
        return shown, wording.phrase.format(v=_plural(int(value), COUNT_NOUNS[feature])), "this"
    elif wording.kind == "flag":
        yes, no = wording.phrase.split("|")
        return ("yes", yes, "this") if bool(value) else ("no", no, "this")
    elif wording.kind == "share":
        shown = f"{float(value):.0%}"
    else:
        shown = _category_text(feature, value, wording.labels)
    return shown, wording.phrase.format(v=shown), "this"


def reason(feature: str, value: Any, contribution: float) -> Reason:
    """The reason one feature value gives, from its contribution to the raw margin."""
    direction: Direction = "raises" if contribution > 0 else "lowers"
    shown, phrase, qualifier = describe(feature, value)
    sentence = f"{phrase} ({qualifier} {direction} collectibility)"
    return Reason(feature, shown, direction, float(contribution), sentence)


def top_features(contributions: np.ndarray, limit: int = MAX_REASONS) -> list[int]:
    """Positions of the features (bias column excluded) with the largest |contribution|,
    ties broken by position; features with a zero contribution are never chosen."""
    values = np.abs(np.asarray(contributions, dtype=np.float64)[:-1])
    order = np.lexsort((np.arange(values.size), -values))
    return [int(i) for i in order[:limit] if values[i] > 0]


def reasons_for_row(
    feature_names: Sequence[str],
    contributions: np.ndarray,
    value_of: Callable[[str], Any],
    limit: int = MAX_REASONS,
) -> list[Reason]:
    """Up to ``limit`` reasons of one scored row; ``value_of(feature)`` gives the raw value."""
    return [
        reason(feature_names[i], value_of(feature_names[i]), float(contributions[i]))
        for i in top_features(contributions, limit)
    ]


class ReasonTexts:
    """For the batch scorer: reason sentences of snapshot rows, from the model's contributions.

    A plain callable (picklable with the model) matching ``serving.batch.scorer.ReasonsFn``."""

    def __init__(self, model: Any, limit: int = MAX_REASONS):
        self.model = model
        self.limit = limit

    def __call__(self, snapshots: pd.DataFrame, X: np.ndarray) -> list[list[str]]:
        names = list(self.model.pipeline.feature_names_)
        contributions = self.model.contributions(X)
        rows = snapshots[names].to_dict("records")
        return [
            [r.sentence for r in reasons_for_row(names, vector, row.__getitem__, self.limit)]
            for vector, row in zip(contributions, rows, strict=True)
        ]
