"""The actions the rules forbid for an account, each with the first rule that forbids it.

``forbidden`` turns the rule hits of ``serving.policy.rules.rule_hits`` into blocked actions, in
the precedence order of the policy: a credit balance, a contractual adjustment, a hold (dispute,
appeal, pending financial-assistance application), financial assistance or low income, a payer
balance, a denial, the small-balance threshold, then the patient-balance gates (501(r), state
rules, collection effort, Medicare bad debt, a kept payment plan).
"""

from __future__ import annotations

from serving.policy.facts import Facts
from serving.policy.rules import (
    AGENCY_AND_BAD_DEBT,
    FROM_PATIENT,
    FROM_PATIENT_SIDE,
    NO_DENIAL,
    NO_FAP,
    NOT_ON_HOLD,
    NOT_ON_PAYER,
    NOT_REFUND,
    NOT_WITH_CONTRACT,
    PLAN_KEPT,
    Block,
    Context,
    Hits,
    first_statement,
    rule_hits,
)


def _block(blocked: dict[str, Block], actions: tuple[str, ...], rule: Block | None) -> None:
    if rule is not None:
        for action in actions:
            blocked.setdefault(action, rule)


def forbidden(f: Facts, ctx: Context, hits: Hits | None = None) -> dict[str, Block]:
    """Actions the rules forbid for this account, each with the first rule that forbids it."""
    hits = rule_hits(f, ctx) if hits is None else hits
    credit, contractual, hold, fap_approved, low_income, payer_side, denial = hits
    if credit is not None:
        return dict.fromkeys(NOT_REFUND, credit)
    blocked: dict[str, Block] = (
        {} if contractual is None else dict.fromkeys(NOT_WITH_CONTRACT, contractual)
    )
    if hold is not None:
        _block(blocked, NOT_ON_HOLD, hold)
    if fap_approved is None and low_income is None:
        blocked.setdefault("charity_write_off", NO_FAP)
    else:
        from_patient = FROM_PATIENT if f.payer_side else FROM_PATIENT_SIDE
        _block(blocked, from_patient, fap_approved)
        _block(blocked, from_patient, low_income)
    if payer_side is not None:
        _block(blocked, NOT_ON_PAYER, payer_side)
    if denial is None:
        blocked.setdefault("denial_write_off", NO_DENIAL)
    elif denial[0] != "denial_write_off":
        blocked.setdefault("denial_write_off", denial[1])
    if not f.open_balance < ctx.policy.small_balance_threshold:
        blocked.setdefault("small_balance_write_off", ctx.not_small)
    if not f.payer_side:
        _patient_gates(f, ctx, blocked)
    return blocked


def _patient_gates(f: Facts, ctx: Context, blocked: dict[str, Block]) -> None:
    """501(r), state, collection-effort, Medicare and payment-plan gates on patient balances.

    Each gate forbids agency, bad debt or both, and an action keeps the first rule that forbids
    it: once both are forbidden, the later gates change nothing and their sentences are not made.
    """
    if "agency" in blocked and "bad_debt_write_off" in blocked:
        return
    if f.plan_kept:
        _block(blocked, AGENCY_AND_BAD_DEBT, PLAN_KEPT)
        return
    policy, first = ctx.policy, f.days_since_first_statement
    since = first_statement(first)
    if policy.facility_is_501r:
        if not first >= policy.fap_waiting_days:
            _block(blocked, ctx.gated, ("R501R-1", f"{ctx.waiting} ({since})"))
        if not f.fap_screened:
            _block(blocked, ctx.gated, ctx.screen)
        if "bad_debt_write_off" in ctx.gated and not first >= policy.fap_application_days:
            days = policy.fap_application_days
            sentence = f"FAP applications accepted for {days} days after the first statement "
            sentence += f"({since}): bad debt waits so a late application is charity"
            blocked.setdefault("bad_debt_write_off", ("R501R-3", sentence))
        if "agency" in blocked and "bad_debt_write_off" in blocked:
            return
    days = ctx.agency_days.get(
        f.state or "", policy.state_default.agency_referral_allowed_after_days
    )
    if days > 0 and not first >= days:
        name = f.state or "default"
        sentence = f"{name}: no agency referral until {days} days after the first statement"
        blocked.setdefault("agency", (f"STATE-{name}-AGENCY", f"{sentence} ({since})"))
    effort = policy.collection_effort
    if f.n_statements < effort.min_statements or not first >= effort.min_days_since_first_statement:
        sentence = f"collection effort not yet documented: {f.n_statements} of "
        sentence += f"{effort.min_statements} statements, {since} "
        sentence += f"({effort.min_days_since_first_statement} days required)"
        _block(blocked, AGENCY_AND_BAD_DEBT, ("EFFORT-1", sentence))
        return
    medicare = policy.medicare_bad_debt
    if f.payer_type in ctx.medicare_types and (
        f.n_statements < medicare.min_statements
        or not first >= medicare.min_days_since_first_statement
    ):
        sentence = f"Medicare bad debt needs documented effort: {f.n_statements} of "
        sentence += f"{medicare.min_statements} statements, {since} "
        sentence += f"({medicare.min_days_since_first_statement} days required)"
        blocked.setdefault("bad_debt_write_off", ("MCR-BD-1", sentence))
