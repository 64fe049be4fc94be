"""Patient collections on synthetic balances: statements, payments, plans, FAP, write-offs.

The generative assumptions are listed in the docstring of ``training.synthetic``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from training.synthetic.events import EventLog, PatientBalances

if TYPE_CHECKING:
    from training.synthetic.config import GeneratorConfig

# Log-odds of paying in full by balance, before the propensity, age and self-pay terms;
# calibrated so that ~32% of balances <= $500, ~15% of $500-1,000 and ~1% of >= $3,000 are
# paid in full (DOMAIN.md).
FULL_PAYMENT_LOGIT_BY_BALANCE = (
    (1.0, 0.0),
    (35.0, -0.75),
    (200.0, -1.65),
    (500.0, -1.9),
    (1_000.0, -2.2),
    (3_000.0, -4.2),
    (10_000.0, -6.0),
)
PROPENSITY_WEIGHT = 1.2  # log-odds per standard deviation of the patient's latent propensity
AGE_WEIGHT_PER_DECADE = -0.1  # log-odds per decade of age above 45
SELF_PAY_SHIFT = -0.4
PARTIAL_PAYMENT_LOGIT = -0.6  # among balances not paid in full, chance of some payment
PARTIAL_PROPENSITY_WEIGHT = 0.8
STATEMENT_CYCLE_DAYS = 30
MAX_STATEMENTS = 4
PAYMENT_AFTER_STATEMENT = (3, 25)  # days from a statement to the payment it prompts
STATEMENTS_BEFORE_PAYMENT_SHARES = (0.45, 0.30, 0.15, 0.10)
TWO_INSTALLMENT_SHARE = 0.20
PLAN_MIN_BALANCE = 300.0
PLAN_SHARE = 0.30  # of balances >= PLAN_MIN_BALANCE that pay at all, paid through a plan
PLAN_MONTHS = (3, 12)
FAP_RATE = 0.04  # + 0.12 if balance >= $1,000, + 0.08 if self-pay
FAP_APPROVAL_RATE = 0.65
DISPUTE_RATE = {"self_pay_over_400": 0.10, "other": 0.015}
WRITE_OFF_AFTER_DAYS = (120, 240)  # from the first statement

LUMP_FULL, PLAN_COMPLETE, PLAN_DEFAULT, PARTIAL, CHARITY, UNPAID = range(6)


@dataclass(frozen=True)
class _Payments:
    """Patient payments: row (index into the balances), day and amount of each."""

    row: np.ndarray
    day: np.ndarray
    amount: np.ndarray

    def total(self, n: int, before: np.ndarray | None = None) -> np.ndarray:
        """Sum paid per balance row, optionally only payments dated before ``before[row]``."""
        keep = np.ones(len(self.row), bool) if before is None else self.day < before[self.row]
        return np.bincount(self.row[keep], weights=self.amount[keep], minlength=n)

    def last_day(self, n: int) -> np.ndarray:
        """Day of the last payment per row, -1 if none."""
        last = np.full(n, -1, dtype=np.int64)
        np.maximum.at(last, self.row, self.day)
        return last


def full_payment_probability(balances: PatientBalances) -> np.ndarray:
    """Chance that a balance is paid in full: falls with size and age, rises with propensity."""
    anchor_balance, anchor_logit = zip(*FULL_PAYMENT_LOGIT_BY_BALANCE, strict=True)
    logit = (
        np.interp(np.log(np.maximum(balances.balance, 1.0)), np.log(anchor_balance), anchor_logit)
        + PROPENSITY_WEIGHT * balances.propensity
        + AGE_WEIGHT_PER_DECADE * (balances.age - 45) / 10
        + SELF_PAY_SHIFT * balances.self_pay
    )
    return 1.0 / (1.0 + np.exp(-logit))


@dataclass(frozen=True)
class _Timeline:
    """When each balance's non-payment events happen (days since 1970-01-01)."""

    fap_applied: np.ndarray
    fap_day: np.ndarray
    fap_decided_day: np.ndarray
    disputed: np.ndarray
    dispute_day: np.ndarray
    dispute_closed_day: np.ndarray
    write_off_day: np.ndarray
    statements_until: np.ndarray


def collect_patient_balances(
    balances: PatientBalances, config: GeneratorConfig, rng: np.random.Generator, log: EventLog
) -> None:
    """All patient-side events of the given balances, in a plausible order per claim."""
    n = len(balances.claim)
    path, fap_applied = _choose_paths(balances, rng)
    plan_day = (
        balances.first_statement_day
        + STATEMENT_CYCLE_DAYS * rng.integers(0, 3, n)
        + rng.integers(3, 21, n)
    )
    payments = _payments(balances, path, plan_day, rng)
    timeline = _timeline(balances, path, fap_applied, plan_day, payments, rng)
    _log_statements(balances, payments, timeline, log)
    c = balances.claim
    plans = np.isin(path, [PLAN_COMPLETE, PLAN_DEFAULT])
    log.add(c[plans], plan_day[plans], "payment_plan")
    log.add(c[payments.row], payments.day, "payment", amount=payments.amount, party="patient")
    _log_assistance_and_disputes(balances, path == CHARITY, timeline, log)
    remaining = np.round(balances.balance - payments.total(n), 2)
    bad = (path != CHARITY) & (remaining > 0)
    reason = np.where(remaining < config.small_balance_threshold, "small_balance", "bad_debt")
    log.add(
        c[bad], timeline.write_off_day[bad], "adjustment", amount=remaining[bad], reason=reason[bad]
    )


def _timeline(
    balances: PatientBalances,
    path: np.ndarray,
    fap_applied: np.ndarray,
    plan_day: np.ndarray,
    payments: _Payments,
    rng: np.random.Generator,
) -> _Timeline:
    """FAP, dispute and write-off days; statements stop when the balance is settled."""
    n = len(path)
    first = balances.first_statement_day
    fap_day = first + rng.integers(10, 151, n)
    fap_decided_day = fap_day + rng.integers(14, 46, n)
    unpaid = np.isin(path, [PARTIAL, PLAN_DEFAULT, UNPAID])
    disputed = unpaid & (rng.random(n) < _dispute_rate(balances))
    dispute_day = first + rng.integers(5, 101, n)
    dispute_closed_day = dispute_day + rng.integers(20, 76, n)
    last_activity = np.maximum.reduce(
        [
            payments.last_day(n),
            np.where(fap_applied, fap_decided_day, -1),
            np.where(disputed, dispute_closed_day, -1),
        ]
    )
    write_off_day = np.maximum(
        first + rng.integers(WRITE_OFF_AFTER_DAYS[0], WRITE_OFF_AFTER_DAYS[1] + 1, n),
        last_activity + rng.integers(30, 61, n),
    )
    statements_until = np.select(
        [path == LUMP_FULL, np.isin(path, [PLAN_COMPLETE, PLAN_DEFAULT]), path == CHARITY],
        [payments.last_day(n), plan_day, fap_day],
        default=write_off_day,
    )
    return _Timeline(
        fap_applied=fap_applied,
        fap_day=fap_day,
        fap_decided_day=fap_decided_day,
        disputed=disputed,
        dispute_day=dispute_day,
        dispute_closed_day=dispute_closed_day,
        write_off_day=write_off_day,
        statements_until=statements_until,
    )


def _log_assistance_and_disputes(
    balances: PatientBalances, approved: np.ndarray, timeline: _Timeline, log: EventLog
) -> None:
    """FAP applications and decisions (charity adjustment if approved), disputes."""
    c = balances.claim
    applied, decided_day = timeline.fap_applied, timeline.fap_decided_day
    log.add(c[applied], timeline.fap_day[applied], "fap_application")
    decision = np.where(approved, "approved", "denied")
    log.add(c[applied], decided_day[applied], "fap_decision", reason=decision[applied])
    log.add(
        c[approved],
        decided_day[approved],
        "adjustment",
        amount=balances.balance[approved],
        reason="charity",
    )
    disputed = timeline.disputed
    log.add(c[disputed], timeline.dispute_day[disputed], "dispute_open")
    log.add(c[disputed], timeline.dispute_closed_day[disputed], "dispute_closed")


def _choose_paths(
    balances: PatientBalances, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """How each balance resolves, and whether the patient applied for financial assistance."""
    n = len(balances.balance)
    full = rng.random(n) < full_payment_probability(balances)
    plan = (balances.balance >= PLAN_MIN_BALANCE) & (rng.random(n) < PLAN_SHARE)
    fap_rate = FAP_RATE + 0.12 * (balances.balance >= 1_000) + 0.08 * balances.self_pay
    fap_applied = ~full & (rng.random(n) < fap_rate)
    approved = fap_applied & (rng.random(n) < FAP_APPROVAL_RATE)
    partial_logit = PARTIAL_PAYMENT_LOGIT + PARTIAL_PROPENSITY_WEIGHT * balances.propensity
    partial = rng.random(n) < 1.0 / (1.0 + np.exp(-partial_logit))
    path = np.select(
        [full & ~plan, full & plan, approved, partial & plan, partial],
        [LUMP_FULL, PLAN_COMPLETE, CHARITY, PLAN_DEFAULT, PARTIAL],
        default=UNPAID,
    )
    return path, fap_applied


def _dispute_rate(balances: PatientBalances) -> np.ndarray:
    """Disputes are mostly No Surprises Act disputes of self-pay bills of $400 or more."""
    large_self_pay = balances.self_pay & (balances.balance >= 400)
    return np.where(large_self_pay, DISPUTE_RATE["self_pay_over_400"], DISPUTE_RATE["other"])


def _payments(
    balances: PatientBalances, path: np.ndarray, plan_day: np.ndarray, rng: np.random.Generator
) -> _Payments:
    """Patient payments of every path: lump sums, installments, plan months, partial payments."""
    n = len(path)
    balance = balances.balance
    cycles = rng.choice(MAX_STATEMENTS, size=n, p=STATEMENTS_BEFORE_PAYMENT_SHARES)
    low, high = PAYMENT_AFTER_STATEMENT
    first_day = (
        balances.first_statement_day
        + STATEMENT_CYCLE_DAYS * cycles
        + rng.integers(low, high + 1, n)
    )
    two = (path == LUMP_FULL) & (rng.random(n) < TWO_INSTALLMENT_SHARE) & (balance >= 0.02)
    share = np.where(two, rng.uniform(0.3, 0.7, n), 1.0)
    share = np.where(path == PARTIAL, rng.uniform(0.1, 0.7, n), share)
    first_amount = np.clip(np.round(balance * share, 2), 0.01, balance)
    second_day = first_day + rng.integers(20, 46, n)
    parts = [
        (np.isin(path, [LUMP_FULL, PARTIAL]), first_day, first_amount),
        (two, second_day, np.round(balance - first_amount, 2)),
        *_plan_installments(balance, path, plan_day, rng),
    ]
    rows = [np.flatnonzero(mask & (amount > 0)) for mask, _, amount in parts]
    return _Payments(
        row=np.concatenate(rows),
        day=np.concatenate([day[r] for r, (_, day, _) in zip(rows, parts, strict=True)]),
        amount=np.concatenate([a[r] for r, (_, _, a) in zip(rows, parts, strict=True)]),
    )


def _plan_installments(
    balance: np.ndarray, path: np.ndarray, plan_day: np.ndarray, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Monthly plan payments from the plan's start; defaulting plans stop early."""
    n = len(balance)
    target = rng.uniform(50, 150, n)
    months = np.clip(np.ceil(balance / target), *PLAN_MONTHS).astype(np.int64)
    installment = np.floor(balance / months * 100) / 100
    last = np.round(balance - installment * (months - 1), 2)
    paid_months = np.where(path == PLAN_DEFAULT, rng.integers(1, months), months)
    paid_months = np.where(np.isin(path, [PLAN_COMPLETE, PLAN_DEFAULT]), paid_months, 0)
    return [
        (
            month < paid_months,
            plan_day + STATEMENT_CYCLE_DAYS * month,
            np.where(month == months - 1, last, installment),
        )
        for month in range(PLAN_MONTHS[1])
    ]


def _log_statements(
    balances: PatientBalances, payments: _Payments, timeline: _Timeline, log: EventLog
) -> None:
    """Monthly statements of the open balance until settled, none while a dispute is open."""
    n = len(balances.claim)
    for cycle in range(MAX_STATEMENTS):
        day = balances.first_statement_day + STATEMENT_CYCLE_DAYS * cycle
        on_hold = (
            timeline.disputed & (day >= timeline.dispute_day) & (day <= timeline.dispute_closed_day)
        )
        due = np.round(balances.balance - payments.total(n, before=day), 2)
        sent = (day < timeline.statements_until) & ~on_hold & (due > 0)
        log.add(balances.claim[sent], day[sent], "statement", amount=due[sent])
