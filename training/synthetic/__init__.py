"""Seeded, realistic synthetic A/R history in the interchange format (``features.schema``).

``generate_history(GeneratorConfig(...))`` returns ``(claims, transactions)`` (``generate``);
``write_history`` writes them. The package owns the generator: ``config`` (what to make),
``claims`` (patients and claims), ``events`` (payer adjudication), ``patients`` (patient
collections) and ``generate`` (the run); it imports only ``features``. Published figures come
from ``DOMAIN.md``; the rest are plausible choices, listed here so that a reader knows what a
model trained on this data can learn.

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

from training.synthetic.config import (
    CORRECTABLE_RECOVERY_RATE,
    DEFAULT_PAYER_MIX,
    INITIAL_DENIAL_RATE,
    INITIAL_DENIAL_TOLERANCE,
    OVERPAYMENT_RATE,
    PAID_IN_FULL_RATES,
    PAID_IN_FULL_TOLERANCE,
    GeneratorConfig,
)
from training.synthetic.generate import generate_history, history_window, write_history

__all__ = [
    "CORRECTABLE_RECOVERY_RATE",
    "DEFAULT_PAYER_MIX",
    "INITIAL_DENIAL_RATE",
    "INITIAL_DENIAL_TOLERANCE",
    "OVERPAYMENT_RATE",
    "PAID_IN_FULL_RATES",
    "PAID_IN_FULL_TOLERANCE",
    "GeneratorConfig",
    "generate_history",
    "history_window",
    "write_history",
]
