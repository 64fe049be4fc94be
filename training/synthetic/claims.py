"""Synthetic patients and claims: who is seen, who covers them, what is billed and when.

The generative assumptions are listed in the docstring of ``training.synthetic``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from training.synthetic.config import GeneratorConfig

DAYS_PER_YEAR = 365.25
DAYS_PER_MONTH = 30.4375

STATE_SHARES = {
    "CA": 0.18,
    "TX": 0.15,
    "FL": 0.13,
    "NY": 0.12,
    "CO": 0.09,
    "MD": 0.08,
    "IL": 0.07,
    "PA": 0.06,
    "AZ": 0.06,
    "NM": 0.06,
}
STATE_ZIP3 = {
    "CA": ("900", "902", "913", "921", "941", "945", "951", "956"),
    "TX": ("750", "752", "770", "773", "782", "787", "799"),
    "FL": ("321", "327", "328", "331", "336", "337"),
    "NY": ("100", "104", "112", "113", "117", "142"),
    "CO": ("800", "802", "803", "805", "809"),
    "MD": ("208", "209", "210", "212", "217"),
    "IL": ("600", "606", "607", "617"),
    "PA": ("150", "152", "170", "190", "191"),
    "AZ": ("850", "852", "853", "857"),
    "NM": ("870", "871", "875", "880", "881"),
}
PAYER_IDS: dict[str, tuple[tuple[str, float], ...]] = {
    "commercial": (
        ("BCBS01", 0.30),
        ("UHC01", 0.25),
        ("AETNA01", 0.20),
        ("CIGNA01", 0.15),
        ("HUMANA01", 0.10),
    ),
    "medicare": (("MCARE", 1.0),),
    "medicare_advantage": (("UHCMA01", 0.40), ("HUMMA01", 0.35), ("AETMA01", 0.25)),
    "self_pay": (("SELF", 1.0),),
    "workers_comp": (("WCOMP01", 0.60), ("TRAVWC01", 0.40)),
    "tricare_va": (("TRICARE", 0.70), ("VACCN", 0.30)),
    "other": (("AUTO01", 0.60), ("OTHER01", 0.40)),
}
MEDICAID_PAYER_PREFIX = "MCAID"  # one state Medicaid program per state: MCAIDTX, MCAIDNY, ...

PLACE_OF_SERVICE = {
    "professional": (("11", 0.75), ("22", 0.10), ("23", 0.08), ("21", 0.05), ("19", 0.02)),
    "institutional": (("22", 0.45), ("21", 0.30), ("23", 0.20), ("19", 0.05)),
}
CHARGE_MEDIAN = {  # (claim_type, place_of_service) -> median billed charge in $
    ("professional", "11"): 180.0,
    ("professional", "22"): 300.0,
    ("professional", "23"): 450.0,
    ("professional", "21"): 600.0,
    ("professional", "19"): 300.0,
    ("institutional", "22"): 2_500.0,
    ("institutional", "21"): 22_000.0,
    ("institutional", "23"): 3_500.0,
    ("institutional", "19"): 2_000.0,
}
CHARGE_LOG_SIGMA = {"professional": 0.55, "institutional": 0.85}
MIN_CHARGE = 25.0
ALLOWED_RATIO_RANGE = {  # payer type -> allowed amount as a share of the charge
    "commercial": (0.55, 0.65),
    "medicare": (0.35, 0.45),
    "medicare_advantage": (0.40, 0.50),
    "medicaid": (0.25, 0.35),
    "workers_comp": (0.60, 0.75),
    "tricare_va": (0.35, 0.45),
    "other": (0.50, 0.65),
}
ALLOWED_NOISE_SIGMA = 0.03  # actual allowed vs the contracted expectation (log scale)
VISIT_FREQUENCY_SHAPE = 1.5  # gamma shape of a patient's visit rate: a few frequent visitors
WORKERS_COMP_AGES = (18, 67)


@dataclass(frozen=True)
class Window:
    """The days (since 1970-01-01) the history covers, both ends included."""

    start_day: int
    end_day: int


@dataclass(frozen=True)
class Patients:
    """The patient pool; ``propensity`` is latent (never output)."""

    coverage: np.ndarray
    payer_id: np.ndarray
    birth_day: np.ndarray
    state: np.ndarray
    zip3: np.ndarray
    propensity: np.ndarray
    visit_cdf: np.ndarray
    workers_comp_rate: float


@dataclass(frozen=True)
class ClaimBlock:
    """Per-claim arrays of one block; ``allowed_amount``, ``age`` and ``propensity`` are hidden."""

    claim_number: np.ndarray
    patient: np.ndarray
    payer_type: np.ndarray
    payer_id: np.ndarray
    claim_type: np.ndarray
    place_of_service: np.ndarray
    service_day: np.ndarray
    billed_day: np.ndarray
    total_charge: np.ndarray
    expected_amount: np.ndarray
    allowed_amount: np.ndarray
    age: np.ndarray
    reported_age: np.ndarray
    state: np.ndarray
    zip3: np.ndarray
    propensity: np.ndarray


def draw_labels(rng: np.random.Generator, table: tuple[tuple[str, float], ...], n: int):
    """``n`` labels drawn from a (label, share) table."""
    labels = np.array([label for label, _ in table], dtype=object)
    shares = np.array([share for _, share in table])
    return labels[rng.choice(len(labels), size=n, p=shares / shares.sum())]


def patient_pool_size(n_claims: int, claims_per_patient: float) -> int:
    """Pool size so that patients who appear have ``claims_per_patient`` claims on average.

    Claims per patient are gamma-Poisson; patients drawn zero times never appear, so the rate
    per pooled patient (found by bisection) is below the observed average.
    """
    shape = VISIT_FREQUENCY_SHAPE
    low, high = 1e-6, claims_per_patient
    for _ in range(60):
        rate = (low + high) / 2
        seen_share = 1.0 - (1.0 + rate / shape) ** -shape
        low, high = (rate, high) if rate / seen_share < claims_per_patient else (low, rate)
    return max(1, round(n_claims / ((low + high) / 2)))


def make_patients(config: GeneratorConfig, rng: np.random.Generator, window: Window) -> Patients:
    """The patient pool: coverage, age, address, latent payment propensity, visit frequency."""
    n = patient_pool_size(config.n_claims, config.claims_per_patient)
    coverage_mix = tuple((t, s) for t, s in config.payer_mix if t != "workers_comp")
    coverage = draw_labels(rng, coverage_mix, n)
    age_at_start = _age_for_coverage(coverage, rng)
    birth_day = window.start_day - np.floor((age_at_start + rng.random(n)) * DAYS_PER_YEAR).astype(
        np.int64
    )
    state = draw_labels(rng, tuple(STATE_SHARES.items()), n)
    zip3 = np.empty(n, dtype=object)
    for code, prefixes in STATE_ZIP3.items():
        in_state = state == code
        zip3[in_state] = np.array(prefixes, dtype=object)[
            rng.integers(len(prefixes), size=in_state.sum())
        ]
    visit_weight = rng.gamma(VISIT_FREQUENCY_SHAPE, 1.0, n)
    working_age = (age_at_start >= WORKERS_COMP_AGES[0]) & (age_at_start <= WORKERS_COMP_AGES[1])
    workers_comp_share = dict(config.payer_mix).get("workers_comp", 0.0)
    eligible_share = np.average(working_age, weights=visit_weight)
    return Patients(
        coverage=coverage,
        payer_id=_payer_ids(coverage, state, rng),
        birth_day=birth_day,
        state=state,
        zip3=zip3,
        propensity=rng.standard_normal(n),
        visit_cdf=np.cumsum(visit_weight),
        workers_comp_rate=min(1.0, workers_comp_share / max(eligible_share, 1e-9)),
    )


def _age_for_coverage(coverage: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Age in whole years at the start of the window, plausible for the patient's coverage."""
    n = len(coverage)
    senior = 65 + np.minimum(rng.gamma(2.0, 5.0, n), 33)
    working = rng.uniform(18, 65, n)
    child = rng.uniform(0, 18, n)
    young_adult = 18 + np.minimum(rng.gamma(2.0, 9.0, n), 46)
    anyone = rng.uniform(0, 90, n)
    u = rng.random(n)
    age = np.select(
        [
            (coverage == "medicare") & (u < 0.12),  # under-65 disability entitlement
            np.isin(coverage, ["medicare", "medicare_advantage"]),
            (coverage == "medicaid") & (u < 0.40),
            (coverage == "commercial") & (u < 0.20),
            np.isin(coverage, ["medicaid", "commercial"]),
            coverage == "self_pay",
        ],
        [working, senior, child, child, working, young_adult],
        default=anyone,
    )
    return np.floor(age)


def _payer_ids(coverage: np.ndarray, state: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A payer id per patient: a plan of the coverage type; Medicaid is the state's program."""
    payer_id = np.empty(len(coverage), dtype=object)
    for payer_type, table in PAYER_IDS.items():
        mask = coverage == payer_type
        payer_id[mask] = draw_labels(rng, table, int(mask.sum()))
    medicaid = coverage == "medicaid"
    payer_id[medicaid] = MEDICAID_PAYER_PREFIX + state[medicaid]
    return payer_id


def make_claims(
    claim_number: np.ndarray,
    patients: Patients,
    config: GeneratorConfig,
    rng: np.random.Generator,
    window: Window,
) -> ClaimBlock:
    """Claims for the given claim numbers: patient, payer, service, billing, charges, contract."""
    n = len(claim_number)
    draw = rng.random(n) * patients.visit_cdf[-1]
    patient = np.minimum(
        np.searchsorted(patients.visit_cdf, draw, side="right"), len(patients.visit_cdf) - 1
    )
    claim_type = np.where(
        rng.random(n) < config.professional_share, "professional", "institutional"
    ).astype(object)
    place_of_service = np.empty(n, dtype=object)
    for kind, table in PLACE_OF_SERVICE.items():
        mask = claim_type == kind
        place_of_service[mask] = draw_labels(rng, table, int(mask.sum()))
    lag = _billing_lag(claim_type, rng)
    span = window.end_day - lag - window.start_day + 1
    service_day = window.start_day + np.floor(rng.random(n) * span).astype(np.int64)
    age = np.floor((service_day - patients.birth_day[patient]) / DAYS_PER_YEAR).astype(np.int64)
    payer_type, payer_id = _claim_payer(patient, age, patients, rng)
    total_charge = _charges(claim_type, place_of_service, rng)
    expected_amount, allowed_amount = _contract_amounts(total_charge, payer_type, config, rng)
    missing = rng.random((3, n)) < config.missing_demographics_rate
    return ClaimBlock(
        claim_number=claim_number,
        patient=patient,
        payer_type=payer_type,
        payer_id=payer_id,
        claim_type=claim_type,
        place_of_service=place_of_service,
        service_day=service_day,
        billed_day=service_day + lag,
        total_charge=total_charge,
        expected_amount=expected_amount,
        allowed_amount=allowed_amount,
        age=age,
        reported_age=np.where(missing[0], np.nan, age),
        state=np.where(missing[1], None, patients.state[patient]),
        zip3=np.where(missing[2], None, patients.zip3[patient]),
        propensity=patients.propensity[patient],
    )


def _billing_lag(claim_type: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Days from service to first submission: ~1 week professional, ~2 weeks institutional."""
    n = len(claim_type)
    professional = 1 + rng.gamma(2.0, 3.0, n)
    institutional = 3 + rng.gamma(2.0, 5.0, n)
    lag = np.where(claim_type == "professional", professional, institutional)
    return np.minimum(np.round(lag), 60).astype(np.int64)


def _claim_payer(
    patient: np.ndarray, age: np.ndarray, patients: Patients, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The patient's coverage, or workers' comp for a work injury of a working-age patient."""
    low, high = WORKERS_COMP_AGES
    injury = (rng.random(len(patient)) < patients.workers_comp_rate) & (age >= low) & (age <= high)
    payer_type = patients.coverage[patient].copy()
    payer_id = patients.payer_id[patient].copy()
    payer_type[injury] = "workers_comp"
    payer_id[injury] = draw_labels(rng, PAYER_IDS["workers_comp"], int(injury.sum()))
    return payer_type, payer_id


def _charges(
    claim_type: np.ndarray, place_of_service: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Lognormal billed charges around a median per claim type and place of service."""
    median = np.ones(len(claim_type))
    for (kind, place), value in CHARGE_MEDIAN.items():
        median[(claim_type == kind) & (place_of_service == place)] = value
    sigma = np.where(
        claim_type == "professional",
        CHARGE_LOG_SIGMA["professional"],
        CHARGE_LOG_SIGMA["institutional"],
    )
    charge = median * np.exp(sigma * rng.standard_normal(len(claim_type)))
    return np.round(np.maximum(charge, MIN_CHARGE), 2)


def _contract_amounts(
    total_charge: np.ndarray,
    payer_type: np.ndarray,
    config: GeneratorConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Expected (contracted) amount, sometimes missing, and the payer's actual allowed amount."""
    n = len(total_charge)
    ratio = np.full(n, np.nan)
    for kind, (low, high) in ALLOWED_RATIO_RANGE.items():
        mask = payer_type == kind
        ratio[mask] = rng.uniform(low, high, int(mask.sum()))
    expected = np.round(total_charge * ratio, 2)
    noise = np.exp(ALLOWED_NOISE_SIGMA * rng.standard_normal(n))
    allowed = np.round(np.minimum(expected * noise, total_charge), 2)
    unknown = rng.random(n) < config.expected_amount_missing_rate
    return np.where(unknown, np.nan, expected), allowed
