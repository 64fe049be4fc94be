"""What the synthetic generator makes: ``GeneratorConfig`` and the headline rates it reproduces.

The generative assumptions behind each rate are listed in the docstring of ``training.synthetic``.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, fields

from features.schema import PAYER_TYPES

# Headline rates the generator is built to reproduce, with the tolerance tests hold it to.
INITIAL_DENIAL_RATE = 0.11  # share of insured claims denied on first submission
INITIAL_DENIAL_TOLERANCE = 0.02
CORRECTABLE_RECOVERY_RATE = 0.75  # correctable denials resubmitted and paid
PAID_IN_FULL_RATES = {"<=500": 0.32, "500-1000": 0.15, ">=3000": 0.01}  # resolved balances
PAID_IN_FULL_TOLERANCE = 0.05
OVERPAYMENT_RATE = 0.01  # payer-paid claims with a duplicate payer payment

DEFAULT_PAYER_MIX: tuple[tuple[str, float], ...] = (
    ("commercial", 0.45),
    ("medicare", 0.20),
    ("medicare_advantage", 0.10),
    ("medicaid", 0.12),
    ("self_pay", 0.08),
    ("workers_comp", 0.02),
    ("tricare_va", 0.02),
    ("other", 0.01),
)


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate; the same config always gives the same history."""

    n_claims: int = 10_000
    """Number of claims."""
    seed: int = 7
    """Seed of every random draw."""
    end_date: datetime.date = datetime.date(2026, 9, 30)
    """Last date of the data (the extract date); nothing is dated after it."""
    months: int = 24
    """Months of service dates before end_date."""
    claims_per_patient: float = 2.5
    """Average claims of a patient who appears in the data."""
    payer_mix: tuple[tuple[str, float], ...] = DEFAULT_PAYER_MIX
    """(payer_type, share of claims) pairs; shares sum to 1."""
    professional_share: float = 0.70
    """Share of professional (837P) claims; the rest are institutional."""
    initial_denial_rate: float = INITIAL_DENIAL_RATE
    """Share of insured claims denied on first submission."""
    correctable_recovery_rate: float = CORRECTABLE_RECOVERY_RATE
    """Share of correctable denials (CARC 16, 15, 22, 27) resubmitted and paid."""
    expected_amount_missing_rate: float = 0.10
    """Share of insured claims without an expected_amount."""
    overpayment_rate: float = OVERPAYMENT_RATE
    """Share of payer-paid claims the payer pays twice."""
    refund_rate: float = 0.70
    """Share of overpayments refunded before the history ends (if the date allows)."""
    missing_demographics_rate: float = 0.01
    """Share of claims missing each of patient_age, patient_state, patient_zip3."""
    small_balance_threshold: float = 25.0
    """Unpaid patient balances below this are written off as small_balance, not bad_debt."""
    progress_chunks: int = 10
    """How many times progress is reported; does not change the result."""

    def __post_init__(self) -> None:
        problems = []
        if self.n_claims < 1 or self.months < 1 or self.progress_chunks < 1:
            problems.append("n_claims, months and progress_chunks must be at least 1")
        if self.claims_per_patient < 1:
            problems.append("claims_per_patient must be at least 1")
        unknown = {t for t, _ in self.payer_mix} - set(PAYER_TYPES)
        if unknown or not math.isclose(sum(s for _, s in self.payer_mix), 1.0, abs_tol=1e-6):
            problems.append(f"payer_mix must use {PAYER_TYPES} with shares summing to 1")
        if all(s == 0 for t, s in self.payer_mix if t != "workers_comp"):
            problems.append("payer_mix needs a payer type other than workers_comp")
        rates = [f.name for f in fields(self) if f.name.endswith(("_rate", "_share"))]
        problems += [
            f"{name} must be in [0, 1]" for name in rates if not 0 <= getattr(self, name) <= 1
        ]
        if problems:
            raise ValueError("invalid GeneratorConfig: " + "; ".join(problems))
