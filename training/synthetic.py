"""Seeded, realistic synthetic A/R history in the interchange format (``features.schema``).

``generate_history(GeneratorConfig(...))`` returns ``(claims, transactions)``; the same config
gives the same frames, whatever the progress chunking. Randomness comes in blocks of
``CLAIMS_PER_BLOCK`` claims, block ``b`` drawing from ``SeedSequence(seed, spawn_key=(1, b))``
and the patient pool from ``spawn_key=(0,)``; nothing reads the wall clock. Claim ids are
numbered in billing order. Published figures come from ``DOMAIN.md``; the rest are plausible
choices, listed here so that a reader knows what a model trained on this data can learn.

Patients and claims
- Patient pool sized so that patients who appear have ~2.5 claims each (gamma-Poisson visit
  frequency, shape 1.5: a few patients visit often). Each patient has a hidden payment
  propensity z ~ N(0, 1), one coverage type, an age plausible for it (Medicare 65+ but 12%
  disability under 65, Medicaid 40% children, commercial 20% children, self-pay mostly 18-40),
  a state (CA 18%, TX 15, FL 13, NY 12, CO 9, MD 8, IL 7, PA 6, AZ 6, NM 6) and a zip3 in it.
- Claim payer mix: commercial 45%, medicare 20%, medicare_advantage 10%, medicaid 12%,
  self_pay 8%, workers_comp 2% (a work injury of an 18-67 year old, whatever the coverage),
  tricare_va 2%, other 1%. Payer ids: MCARE, SELF, MCAID<state>, BCBS01/UHC01/AETNA01/
  CIGNA01/HUMANA01, UHCMA01/HUMMA01/AETMA01, WCOMP01/TRAVWC01, TRICARE/VACCN, AUTO01/OTHER01.
- Claim type professional 70% (place of service 11 75%, 22 10%, 23 8%, 21 5%, 19 2%),
  institutional 30% (22 45%, 21 30%, 23 20%, 19 5%).
- Charges lognormal, at least $25: professional median $180 (office) to $600 (inpatient),
  sigma 0.55; institutional $2,000-3,500 outpatient/emergency, $22,000 inpatient, sigma 0.85.
- Allowed = charge x payer-type ratio: commercial 55-65%, medicare 35-45%, MA 40-50%,
  medicaid 25-35%, workers' comp 60-75%, tricare/VA 35-45%, other 50-65%. expected_amount is
  that contracted amount, missing for self-pay and for 10% of claims; the payer's actual
  allowed differs from it by ~3% (lognormal noise).
- service_date uniform over the ``months`` before end_date; billed_date 1 + gamma(2, 3) days
  later (professional, ~1 week) or 3 + gamma(2, 5) (institutional, ~2 weeks), at most 60.
- Age, state and zip3 each missing on 1% of claims.

Payers
- Initial denial for 11% of insured claims (relative rate medicare 0.7, tricare 0.9,
  commercial 1.0, workers' comp and other 1.1, MA 1.15, medicaid 1.3), 10-40 days after
  billing, group CO, CARC 16 24%, 15 8%, 22 12%, 27 10% (correctable, 54%), 29 6%, 50 14%,
  96 10%, 97 9%, 197 7%; RARC N290 or MA130 on 40% / 25% of CO-16, N115 on 20% of CO-50,
  N130 on 30% of CO-96, M15 on 35% of CO-97. The denial carries the denied charge.
- Correctable denials: 75% resubmitted 5-40 days later and paid 2-8 weeks after that; the rest
  written off (``denial_write_off``, the denial's CARC) 60-150 days after the denial.
- Other denials: appealed 15-60 days after the denial (CO-29 10%, 50 45%, 96 20%, 97 25%,
  197 35%), decided 30-90 days later, won 15% / 45% / 25% / 35% / 50% and then paid 7-30 days
  later; lost appeals written off 5-30 days after the decision, unappealed denials 20-90 days
  after the denial.
- Paid claims: 14-56 days after billing (or after the fix/appeal) a payer payment, a CO-45
  contractual adjustment (charge - allowed) and a transfer of the patient's share to the
  patient, all on one day. Patient share (none / deductible PR-1 / coinsurance PR-2 / copay
  PR-3): commercial 15/25/30/30% (deductible left lognormal median $700, coinsurance 10-30%,
  copay $10-50, emergency $100-250), medicare 10/15/75/0 (Part B $257, inpatient Part A
  $1,676, 20%), MA 15/5/30/50, medicaid 80/0/0/20 ($1-4), workers' comp none, tricare
  50/10/10/30, other 40/20/30/10; never above the allowed amount. When the deductible takes
  the whole allowed amount the payer pays nothing and no payer payment is emitted.
- Overpayments: 1% of payer-paid claims get a duplicate payer payment 10-40 days later, 70% of
  those a refund (party payer) 30-120 days after it. The payer's credit does not reduce the
  patient's share. No other claim's balance ever goes negative.

Patients
- Patient balances are PR transfers and the whole charge of self-pay claims (no transfer
  event: self-pay claims are the patient's from billing). Statements carry the patient
  balance still open: the first 2-8 days after the transfer (self-pay: on billed_date), then
  every 30 days, at most 4, until paid, on a plan, applied for FAP or written off, and none
  while a dispute is open.
- Paid in full with probability sigmoid(f(balance) + 1.2 z - 0.1 (age - 45) / 10 - 0.4 if
  self-pay), f interpolated in log balance so that ~32% of balances <= $500, ~15% of
  $500-1,000 and ~1% of >= $3,000 are paid in full once resolved. Paid 3-25 days after
  statement 1-4 (45/30/15/10%); 20% of them in two installments 20-45 days apart.
- 30% of paying balances >= $300 go through a ``payment_plan`` started 3-20 days after
  statement 1-3: 3-12 monthly payments of ~$50-150; partial payers' plans default after
  1..n-1 payments.
- Not paid in full: financial assistance (FAP) application 10-150 days after the first
  statement for 4% (+12% if >= $1,000, +8% self-pay), decided 14-45 days later, 65% approved
  and the whole balance adjusted as ``charity``. Otherwise sigmoid(-0.6 + 0.8 z) (~37%) pay
  10-70% once, or through a plan that defaults.
- Disputes (``dispute_open``, ``dispute_closed`` 20-75 days later, 5-100 days after the first
  statement) on 10% of unpaid self-pay balances >= $400 (No Surprises Act), 1.5% of others.
- What stays unpaid is written off 120-240 days after the first statement and 30-60 days
  after the last payment, FAP decision or dispute: ``small_balance`` under $25, else
  ``bad_debt``.
- The history is cut at end_date: later events are not emitted, recent claims stay open.
"""

from __future__ import annotations

import datetime
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from features.schema import (
    CLAIM_COLUMNS,
    CLAIMS_FILE_STEM,
    PAYER_TYPES,
    TRANSACTION_COLUMNS,
    TRANSACTIONS_FILE_STEM,
    column_names,
)
from training.synthetic_claims import (
    DAYS_PER_MONTH,
    ClaimBlock,
    Patients,
    Window,
    make_claims,
    make_patients,
)
from training.synthetic_events import EventLog, adjudicate
from training.synthetic_patient import collect_patient_balances

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
CLAIMS_PER_BLOCK = 1_000  # the unit of randomness: results never depend on progress chunks
_PATIENT_STREAM, _CLAIM_STREAM = 0, 1
_EPOCH = datetime.date(1970, 1, 1)


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


def history_window(config: GeneratorConfig) -> Window:
    """The days (since 1970-01-01) of service dates: ``months`` back from end_date."""
    end_day = (config.end_date - _EPOCH).days
    return Window(end_day - round(config.months * DAYS_PER_MONTH), end_day)


def generate_history(
    config: GeneratorConfig, progress: Callable[[int], None] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (claims, transactions) frames in the interchange format."""
    window = history_window(config)
    patients = make_patients(config, _rng(config.seed, _PATIENT_STREAM), window)
    n_blocks = math.ceil(config.n_claims / CLAIMS_PER_BLOCK)
    blocks: list[tuple[ClaimBlock, dict[str, np.ndarray]]] = []
    for chunk in np.array_split(np.arange(n_blocks), min(config.progress_chunks, n_blocks)):
        blocks += [_generate_block(config, patients, window, int(block)) for block in chunk]
        if progress is not None:
            progress(min(int(chunk[-1] + 1) * CLAIMS_PER_BLOCK, config.n_claims))
    return _assemble([claims for claims, _ in blocks], [events for _, events in blocks])


def _rng(seed: int, *stream: int) -> np.random.Generator:
    """The generator of one stream of randomness, independent of every other stream."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=stream))


def _generate_block(
    config: GeneratorConfig, patients: Patients, window: Window, block: int
) -> tuple[ClaimBlock, dict[str, np.ndarray]]:
    """Claims of one block and their events up to end_date."""
    rng = _rng(config.seed, _CLAIM_STREAM, block)
    start = block * CLAIMS_PER_BLOCK
    claim_number = np.arange(start, min(start + CLAIMS_PER_BLOCK, config.n_claims))
    claims = make_claims(claim_number, patients, config, rng, window)
    log = EventLog()
    balances = adjudicate(claims, config, rng, log)
    collect_patient_balances(balances, config, rng, log)
    events = log.arrays()
    observed = events["day"] <= window.end_day
    return claims, {name: values[observed] for name, values in events.items()}


def _assemble(
    blocks: list[ClaimBlock], event_blocks: list[dict[str, np.ndarray]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One claims and one transactions frame; claim ids follow billing order."""
    claims = {
        f.name: np.concatenate([getattr(b, f.name) for b in blocks]) for f in fields(ClaimBlock)
    }
    events = {name: np.concatenate([e[name] for e in event_blocks]) for name in event_blocks[0]}
    order = np.lexsort((claims["claim_number"], claims["service_day"], claims["billed_day"]))
    rank = np.empty(len(order), dtype=np.int64)
    rank[claims["claim_number"][order]] = np.arange(len(order))
    claim_ids = _identifiers("C", 7, len(order))
    claims_frame = _claims_frame(
        {name: values[order] for name, values in claims.items()}, claim_ids
    )
    event_rank = rank[events["claim"]]
    event_order = np.lexsort((np.arange(len(event_rank)), event_rank, events["day"]))
    events = {name: values[event_order] for name, values in events.items()}
    return claims_frame, _transactions_frame(events, claim_ids[event_rank[event_order]])


def _identifiers(prefix: str, width: int, n: int) -> np.ndarray:
    """``prefix`` followed by 1..n zero-padded to ``width`` digits (more when n needs it)."""
    digits = pd.Series(np.arange(1, n + 1)).astype(str).str.zfill(width)
    return (prefix + digits).to_numpy(dtype=object)


def _dates(days: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 as midnight datetime64[ns]."""
    return days.astype("datetime64[D]").astype("datetime64[ns]")


def _strings(values: np.ndarray) -> pd.arrays.StringArray:
    """Text values as pandas string dtype, None as missing."""
    return pd.array(values, dtype="string")


def _claims_frame(claims: dict[str, np.ndarray], claim_ids: np.ndarray) -> pd.DataFrame:
    """The claims table in schema column order."""
    n_patients = int(claims["patient"].max()) + 1
    age = claims["reported_age"]
    frame = pd.DataFrame(
        {
            "claim_id": _strings(claim_ids),
            "patient_id": _strings(_identifiers("P", 6, n_patients)[claims["patient"]]),
            "payer_id": _strings(claims["payer_id"]),
            "payer_type": _strings(claims["payer_type"]),
            "claim_type": _strings(claims["claim_type"]),
            "place_of_service": _strings(claims["place_of_service"]),
            "service_date": _dates(claims["service_day"]),
            "billed_date": _dates(claims["billed_day"]),
            "total_charge": claims["total_charge"],
            "expected_amount": claims["expected_amount"],
            "patient_age": pd.arrays.IntegerArray(
                np.nan_to_num(age).astype(np.int64), np.isnan(age)
            ),
            "patient_state": _strings(claims["state"]),
            "patient_zip3": _strings(claims["zip3"]),
        }
    )
    return frame[column_names(CLAIM_COLUMNS)]


def _transactions_frame(events: dict[str, np.ndarray], claim_ids: np.ndarray) -> pd.DataFrame:
    """The transactions table in schema column order, sorted by (date, claim_id)."""
    frame = pd.DataFrame(
        {
            "claim_id": _strings(claim_ids),
            "date": _dates(events["day"]),
            "type": _strings(events["type"]),
            "amount": np.round(events["amount"], 2),
            **{
                name: _strings(events[name])
                for name in ("party", "carc_group", "carc_code", "rarc_code", "reason")
            },
        }
    )
    return frame[column_names(TRANSACTION_COLUMNS)]


def write_history(
    claims: pd.DataFrame,
    transactions: pd.DataFrame,
    out_dir: Path,
    fmt: Literal["csv", "parquet"],
) -> tuple[Path, Path]:
    """Write ``claims.<fmt>`` and ``transactions.<fmt>`` atomically; return their paths.

    CSV has ISO dates (YYYY-MM-DD) and money with 2 decimals; missing values are empty.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"unknown history format {fmt!r}: expected 'csv' or 'parquet'")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    claims_path = out_dir / f"{CLAIMS_FILE_STEM}.{fmt}"
    transactions_path = out_dir / f"{TRANSACTIONS_FILE_STEM}.{fmt}"
    _write_atomically(claims, claims_path, fmt)
    _write_atomically(transactions, transactions_path, fmt)
    return claims_path, transactions_path


def _write_atomically(frame: pd.DataFrame, path: Path, fmt: Literal["csv", "parquet"]) -> None:
    """Write to a temporary file next to ``path``, then rename it over ``path``."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        if fmt == "csv":
            frame.to_csv(temporary, index=False, date_format="%Y-%m-%d", float_format="%.2f")
        else:
            frame.to_parquet(temporary, index=False)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
