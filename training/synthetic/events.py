"""Payer adjudication of synthetic claims: denials, appeals, remittances and overpayments.

The generative assumptions are listed in the docstring of ``training.synthetic``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from training.synthetic.claims import ClaimBlock

if TYPE_CHECKING:
    from training.synthetic.config import GeneratorConfig

EVENT_FIELDS = ("party", "carc_group", "carc_code", "rarc_code", "reason")

DENIAL_RATE_MULTIPLIER = {  # relative initial denial rate per payer type
    "commercial": 1.0,
    "medicare": 0.7,
    "medicare_advantage": 1.15,
    "medicaid": 1.3,
    "workers_comp": 1.1,
    "tricare_va": 0.9,
    "other": 1.1,
}
DENIAL_CODES = np.array(["16", "15", "22", "27", "29", "50", "96", "97", "197"], dtype=object)
DENIAL_CODE_SHARES = np.array([0.24, 0.08, 0.12, 0.10, 0.06, 0.14, 0.10, 0.09, 0.07])
CORRECTABLE_CODES = ("16", "15", "22", "27")  # fix and resubmit
APPEAL_RATE = np.array([0, 0, 0, 0, 0.10, 0.45, 0.20, 0.25, 0.35])  # per DENIAL_CODES entry
APPEAL_WIN_RATE = np.array([0, 0, 0, 0, 0.15, 0.45, 0.25, 0.35, 0.50])
REMARK_CODES = {  # CARC -> (RARC, share of that CARC's denials carrying it)
    "16": (("N290", 0.40), ("MA130", 0.25)),
    "50": (("N115", 0.20),),
    "96": (("N130", 0.30),),
    "97": (("M15", 0.35),),
}
PAYER_DAYS_TO_PAY = (14, 56)  # remittance 2-8 weeks after (re)submission
DAYS_TO_DENIAL = (10, 40)

# Patient responsibility kinds per payer type: shares of (none, deductible, coinsurance, copay).
PATIENT_SHARE_KINDS = {
    "commercial": (0.15, 0.25, 0.30, 0.30),
    "medicare": (0.10, 0.15, 0.75, 0.0),
    "medicare_advantage": (0.15, 0.05, 0.30, 0.50),
    "medicaid": (0.80, 0.0, 0.0, 0.20),
    "workers_comp": (1.0, 0.0, 0.0, 0.0),
    "tricare_va": (0.50, 0.10, 0.10, 0.30),
    "other": (0.40, 0.20, 0.30, 0.10),
}
PR_CODES = np.array([None, "1", "2", "3"], dtype=object)  # deductible, coinsurance, copay
COMMERCIAL_DEDUCTIBLE_MEDIAN = 700.0  # remaining deductible, lognormal sigma 0.8
MEDICARE_DEDUCTIBLE = {"part_a": 1_676.0, "part_b": 257.0}
OFFICE_COPAYS = np.array([10.0, 20.0, 25.0, 30.0, 40.0, 50.0])
EMERGENCY_COPAYS = np.array([100.0, 150.0, 250.0])
MEDICAID_COPAYS = np.array([1.0, 2.0, 3.0, 4.0])


class EventLog:
    """Transactions of one block, gathered stage by stage; ties on a day keep this order."""

    def __init__(self) -> None:
        self._parts: list[dict[str, np.ndarray]] = []

    def add(self, claim: np.ndarray, day: np.ndarray, type_: str, **fields: object) -> None:
        """Record one event per claim; ``fields`` are ``amount`` and ``EVENT_FIELDS`` values."""
        n = len(claim)
        if n == 0:
            return
        unknown = set(fields) - {"amount", *EVENT_FIELDS}
        if unknown:
            raise TypeError(f"unknown event fields: {sorted(unknown)}")
        part = {
            "claim": np.asarray(claim, dtype=np.int64),
            "day": np.broadcast_to(np.asarray(day, dtype=np.int64), (n,)),
            "type": np.full(n, type_, dtype=object),
            "amount": np.broadcast_to(np.asarray(fields.get("amount", np.nan), float), (n,)),
        }
        for name in EVENT_FIELDS:
            part[name] = np.broadcast_to(np.asarray(fields.get(name), dtype=object), (n,))
        self._parts.append(part)

    def arrays(self) -> dict[str, np.ndarray]:
        """All recorded events as one array per field, in recording order."""
        names = ("claim", "day", "type", "amount", *EVENT_FIELDS)
        if not self._parts:
            empty = {"claim": np.int64, "day": np.int64, "amount": float}
            return {name: np.empty(0, dtype=empty.get(name, object)) for name in names}
        return {name: np.concatenate([part[name] for part in self._parts]) for name in names}


@dataclass(frozen=True)
class PatientBalances:
    """Balances that become the patient's to pay, with what drives whether they are paid."""

    claim: np.ndarray
    first_statement_day: np.ndarray
    balance: np.ndarray
    propensity: np.ndarray
    age: np.ndarray
    self_pay: np.ndarray


def denial_probability(payer_type: np.ndarray, config: GeneratorConfig) -> np.ndarray:
    """Per-claim initial denial probability; its mean over insured claims is the config rate."""
    mix = {t: s for t, s in config.payer_mix if t in DENIAL_RATE_MULTIPLIER}
    insured_share = sum(mix.values())
    weighted = sum(DENIAL_RATE_MULTIPLIER[t] * s for t, s in mix.items())
    mean_multiplier = weighted / insured_share if insured_share > 0 else 1.0
    multiplier = np.zeros(len(payer_type))
    for kind, value in DENIAL_RATE_MULTIPLIER.items():
        multiplier[payer_type == kind] = value
    return np.minimum(1.0, config.initial_denial_rate * multiplier / mean_multiplier)


def adjudicate(
    claims: ClaimBlock, config: GeneratorConfig, rng: np.random.Generator, log: EventLog
) -> PatientBalances:
    """Payer events of every claim; returns the balances left for patients to pay."""
    n = len(claims.claim_number)
    insured = claims.payer_type != "self_pay"
    denied = insured & (rng.random(n) < denial_probability(claims.payer_type, config))
    pay_day = claims.billed_day + rng.integers(PAYER_DAYS_TO_PAY[0], PAYER_DAYS_TO_PAY[1] + 1, n)
    recovered, recovered_day = _deny(claims, denied, config, rng, log)
    paid = (insured & ~denied) | recovered
    pay_day = np.where(recovered, recovered_day, pay_day)
    owed = _remit(claims, paid, pay_day, config, rng, log)
    self_pay = ~insured
    has_balance = self_pay | (owed > 0)
    first_statement = np.where(self_pay, claims.billed_day, pay_day + rng.integers(2, 9, n))
    return PatientBalances(
        claim=claims.claim_number[has_balance],
        first_statement_day=first_statement[has_balance],
        balance=np.where(self_pay, claims.total_charge, owed)[has_balance],
        propensity=claims.propensity[has_balance],
        age=claims.age[has_balance],
        self_pay=self_pay[has_balance],
    )


def _deny(
    claims: ClaimBlock,
    denied: np.ndarray,
    config: GeneratorConfig,
    rng: np.random.Generator,
    log: EventLog,
) -> tuple[np.ndarray, np.ndarray]:
    """Denials, resubmissions, appeals and denial write-offs; which claims end up paid, when."""
    n = len(denied)
    code_index = rng.choice(len(DENIAL_CODES), size=n, p=DENIAL_CODE_SHARES)
    code = DENIAL_CODES[code_index]
    denial_day = claims.billed_day + rng.integers(DAYS_TO_DENIAL[0], DAYS_TO_DENIAL[1] + 1, n)
    correctable = np.isin(code, CORRECTABLE_CODES)
    fixed = denied & correctable & (rng.random(n) < config.correctable_recovery_rate)
    appealed = denied & ~correctable & (rng.random(n) < APPEAL_RATE[code_index])
    won = appealed & (rng.random(n) < APPEAL_WIN_RATE[code_index])
    filed_day = denial_day + rng.integers(15, 61, n)
    decided_day = filed_day + rng.integers(30, 91, n)
    resubmit_day = denial_day + rng.integers(5, 41, n)
    remark = _remark_codes(code, rng)
    write_off_day = np.select(
        [correctable, appealed],
        [denial_day + rng.integers(60, 151, n), decided_day + rng.integers(5, 31, n)],
        default=denial_day + rng.integers(20, 91, n),
    )
    written_off = denied & ~fixed & ~won
    c = claims.claim_number
    log.add(
        c[denied],
        denial_day[denied],
        "denial",
        amount=claims.total_charge[denied],
        carc_group="CO",
        carc_code=code[denied],
        rarc_code=remark[denied],
    )
    log.add(c[appealed], filed_day[appealed], "appeal", reason="filed")
    log.add(
        c[appealed], decided_day[appealed], "appeal", reason=np.where(won, "won", "lost")[appealed]
    )
    log.add(
        c[written_off],
        write_off_day[written_off],
        "adjustment",
        amount=claims.total_charge[written_off],
        carc_group="CO",
        carc_code=code[written_off],
        reason="denial_write_off",
    )
    recovered_day = np.where(
        fixed,
        resubmit_day + rng.integers(PAYER_DAYS_TO_PAY[0], PAYER_DAYS_TO_PAY[1] + 1, n),
        decided_day + rng.integers(7, 31, n),
    )
    return fixed | won, recovered_day


def _remark_codes(code: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An occasional RARC remark code to go with a denial's CARC."""
    remark = np.full(len(code), None, dtype=object)
    u = rng.random(len(code))
    for carc, remarks in REMARK_CODES.items():
        threshold = 0.0
        for rarc, share in remarks:
            remark[(code == carc) & (u >= threshold) & (u < threshold + share)] = rarc
            threshold += share
    return remark


def _remit(
    claims: ClaimBlock,
    paid: np.ndarray,
    pay_day: np.ndarray,
    config: GeneratorConfig,
    rng: np.random.Generator,
    log: EventLog,
) -> np.ndarray:
    """Payer payment, CO-45 adjustment, PR transfer, duplicates; returns the patient's share."""
    n = len(paid)
    allowed = claims.allowed_amount
    patient_share, pr_code = _patient_responsibility(claims, rng)
    payer_paid = np.round(allowed - patient_share, 2)
    contractual = np.round(claims.total_charge - allowed, 2)
    duplicate = paid & (payer_paid > 0) & (rng.random(n) < config.overpayment_rate)
    duplicate_day = pay_day + rng.integers(10, 41, n)
    refunded = duplicate & (rng.random(n) < config.refund_rate)
    refund_day = duplicate_day + rng.integers(30, 121, n)
    c = claims.claim_number
    pays = paid & (payer_paid > 0)
    log.add(c[pays], pay_day[pays], "payment", amount=payer_paid[pays], party="payer")
    adjusts = paid & (contractual > 0)
    log.add(
        c[adjusts],
        pay_day[adjusts],
        "adjustment",
        amount=contractual[adjusts],
        carc_group="CO",
        carc_code="45",
        reason="contractual",
    )
    transfers = paid & (patient_share > 0)
    log.add(
        c[transfers],
        pay_day[transfers],
        "transfer",
        amount=patient_share[transfers],
        party="patient",
        carc_group="PR",
        carc_code=pr_code[transfers],
    )
    log.add(
        c[duplicate],
        duplicate_day[duplicate],
        "payment",
        amount=payer_paid[duplicate],
        party="payer",
    )
    log.add(c[refunded], refund_day[refunded], "refund", amount=payer_paid[refunded], party="payer")
    return np.where(transfers, patient_share, 0.0)


def _patient_responsibility(
    claims: ClaimBlock, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Deductible (PR-1), coinsurance (PR-2) or copay (PR-3) per claim, never above allowed."""
    n = len(claims.payer_type)
    kind = np.zeros(n, dtype=np.int64)
    for payer_type, shares in PATIENT_SHARE_KINDS.items():
        mask = claims.payer_type == payer_type
        kind[mask] = rng.choice(4, size=int(mask.sum()), p=shares)
    inpatient = (claims.claim_type == "institutional") & (claims.place_of_service == "21")
    emergency = claims.place_of_service == "23"
    medicare = claims.payer_type == "medicare"
    deductible = np.select(
        [medicare & inpatient, medicare],
        [MEDICARE_DEDUCTIBLE["part_a"], MEDICARE_DEDUCTIBLE["part_b"]],
        default=COMMERCIAL_DEDUCTIBLE_MEDIAN * np.exp(0.8 * rng.standard_normal(n)),
    )
    coinsurance_rate = np.where(
        claims.payer_type == "commercial", rng.choice([0.1, 0.2, 0.3], size=n), 0.2
    )
    copay = np.select(
        [claims.payer_type == "medicaid", emergency],
        [rng.choice(MEDICAID_COPAYS, size=n), rng.choice(EMERGENCY_COPAYS, size=n)],
        default=rng.choice(OFFICE_COPAYS, size=n),
    )
    amount = np.choose(kind, [0.0, deductible, coinsurance_rate * claims.allowed_amount, copay])
    amount = np.round(np.minimum(amount, claims.allowed_amount), 2)
    return np.where(claims.payer_type == "self_pay", 0.0, amount), PR_CODES[kind]
