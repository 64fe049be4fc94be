"""The decision policy's action for a whole batch at once, for the nightly batch scorer.

``serving.policy.recommend.recommend`` makes a full ``Recommendation`` per row (a ``Facts`` tuple,
every rule, every sentence, the blocked actions): about 12 us a row, more than the model itself. A
batch keeps only the action, so ``recommend_actions`` computes that action with column operations on
the same ``policy_facts.fact_columns``: one boolean mask per branch of ``serving.policy.decide``, in
its precedence order (the first branch that applies decides), and the gates of
``serving.policy.forbidden.forbidden`` as masks of the rows where they block an action.

Only the gates that can still block at the patient-side step (rule 9) are needed there: a row
that reaches it is on the patient side with no credit, contractual, hold, FAP approval, state
income floor or denial rule, so its blocks come from ``SMALL-0`` and the patient gates alone,
and ``PLAN-1``, when it applies, is the first rule that forbids agency and bad debt.

Anything that needs reasons, blocks or expected net recovery calls ``recommend``; a test keeps
the two paths equal row by row, on snapshot rows and on randomized rows that reach every rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from serving.policy.facts import FactColumns, fact_columns
from serving.policy.rules import ACTIONS, EPSILON

if TYPE_CHECKING:
    from serving.policy.config import Policy

Branch = tuple[np.ndarray, str]  # (rows where the branch applies, the action it decides)
_ACTION_NAMES = np.asarray(ACTIONS, dtype=object)
_CODES = {action: code for code, action in enumerate(ACTIONS)}


def recommend_actions(rows: pd.DataFrame, policy: Policy) -> np.ndarray:
    """The action of each row, in order: ``recommend(rows, policy)[i].action`` for every i.

    Raises like ``recommend`` on a missing column or an empty open balance.
    """
    facts = fact_columns(rows, policy)
    branches = [*_rule_branches(facts, policy), *_patient_branches(facts, policy)]
    conditions = [mask for mask, _ in branches]
    codes = [_CODES[action] for _, action in branches]
    # the last branch of rule 9 (a fallback to follow-up) is the default
    chosen = np.select(conditions, codes, default=_CODES["follow_up"])
    return _ACTION_NAMES[chosen]


def _present(values: pd.Series) -> np.ndarray:
    return values.notna().to_numpy(dtype=bool)


def _in(values: pd.Series, codes: tuple[str, ...]) -> np.ndarray:
    """Where a text is one of ``codes``; a missing text is in no list (as None is in no set)."""
    return values.isin(codes).to_numpy(dtype=bool, na_value=False)


def _open(flag: pd.Series) -> np.ndarray:
    """Where a hold flag is set or missing: the hold rule treats a missing status as open."""
    return flag.to_numpy(dtype=bool, na_value=True)


def _by_state(state: pd.Series, policy: Policy, field: str) -> np.ndarray:
    """A numeric field of each row's state rule (``Policy.state_rule``); NaN for None."""

    def number(value: float | None) -> float:
        return np.nan if value is None else float(value)

    values = np.full(len(state), number(getattr(policy.state_default, field)))
    for code, rule in policy.states.items():
        values[(state == code).to_numpy(dtype=bool, na_value=False)] = number(getattr(rule, field))
    return values


def _rule_branches(f: FactColumns, policy: Policy) -> list[Branch]:
    """Rules 1-8 of ``policy_decide.decide``, in its order."""
    balance, payer_side = f.open_balance, f.payer_side
    floor = _by_state(f.state, policy, "no_collection_below_fpl_percent")
    low_income = (
        ~np.isnan(floor)
        & ~payer_side
        & ((f.fpl_percent < floor) | f.presumptive_fap_eligible)  # NaN < floor is False
    )
    return [
        (balance < -EPSILON, "refund_review"),
        (np.abs(balance) <= EPSILON, "hold"),
        (_present(f.contractual_carc), "contractual_adjustment"),
        (_open(f.dispute_open) | _open(f.appeal_open) | _open(f.fap_pending), "hold"),
        (f.fap_approved & ~payer_side, "charity_write_off"),
        *_denial_branches(f, policy),
        (low_income & ~f.fap_screened, "fap_screen"),
        (low_income, "charity_write_off"),
        (payer_side, "follow_up"),
    ]


def _denial_branches(f: FactColumns, policy: Policy) -> list[Branch]:
    """``policy_rules.denial_rule``: what a current payer denial calls for."""
    current, code, carc = f.denial_current, f.denial_code, policy.carc
    appealable = current & _in(code, carc.appealable)
    inside_window = ~(f.days_since_denial > policy.appeal_window_days)  # unknown date: inside
    return [
        (current & _in(code, carc.correctable), "resubmit"),
        (appealable & f.appeal_lost, "denial_write_off"),
        (appealable & f.appeal_won, "follow_up"),
        (appealable & inside_window, "appeal"),
        (appealable, "denial_write_off"),
        (current & _in(code, carc.final), "denial_write_off"),
        (current, "follow_up"),
    ]


def _patient_branches(f: FactColumns, policy: Policy) -> list[Branch]:
    """Rule 9 (``policy_decide._patient_side``) on the rows rules 1-8 left undecided."""
    routing, plan, touches = policy.routing, policy.routing.payment_plan, policy.touches_to_collect
    balance, probability, recovery = f.open_balance, f.probability, f.expected_recovery
    cost, floor = policy.cost_per_touch, routing.min_expected_net_recovery
    agency_share = 1 - routing.agency_fee_percent / 100
    net_follow_up = recovery - cost * touches.follow_up
    net_plan = recovery - cost * touches.payment_plan_offer
    net_agency = recovery * agency_share - cost * touches.agency
    under_small = balance < policy.small_balance_threshold  # only SMALL-0 blocks it here
    cycle_open = _effort_short(f, policy)
    wants_agency = (probability >= routing.agency_min_probability) & (net_agency > floor)
    agency_blocked, bad_debt_blocked = _gated(f, policy, cycle_open)
    return [
        (np.isnan(recovery) | np.isnan(probability), "follow_up"),
        (under_small & (net_follow_up <= floor), "small_balance_write_off"),
        ((probability < routing.fap_screen_below_probability) & ~f.fap_screened, "fap_screen"),
        (
            (balance >= plan.min_balance)
            & (plan.min_probability <= probability)
            & (probability <= plan.max_probability)
            & ~f.plan_kept
            & (net_plan > floor),
            "payment_plan_offer",
        ),
        (cycle_open, "follow_up"),
        (wants_agency & ~agency_blocked, "agency"),
        (wants_agency & _screen_first(f, policy, "agency"), "fap_screen"),
        (wants_agency, "follow_up"),
        (under_small, "small_balance_write_off"),
        (~bad_debt_blocked, "bad_debt_write_off"),
        (_screen_first(f, policy, "bad_debt_write_off"), "fap_screen"),
    ]


def _effort_short(f: FactColumns, policy: Policy) -> np.ndarray:
    """Collection effort not yet documented (CYCLE-1, EFFORT-1); no first statement counts."""
    effort = policy.collection_effort
    first = f.days_since_first_statement
    return (f.n_statements < effort.min_statements) | ~(
        first >= effort.min_days_since_first_statement
    )


def _gated(
    f: FactColumns, policy: Policy, effort_short: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Where agency and bad debt are forbidden on a patient balance (``_patient_gates``).

    Which rule forbids them does not change the action, except PLAN-1 (``_screen_first``).
    """
    first, medicare = f.days_since_first_statement, policy.medicare_bad_debt
    state_days = _by_state(f.state, policy, "agency_referral_allowed_after_days")
    agency = f.plan_kept | effort_short | ((state_days > 0) & ~(first >= state_days))
    medicare_short = _in(f.payer_type, medicare.allowable_payer_types) & (
        (f.n_statements < medicare.min_statements)
        | ~(first >= medicare.min_days_since_first_statement)
    )
    bad_debt = f.plan_kept | effort_short | medicare_short
    if policy.facility_is_501r:  # R501R-1 and -2 on the gated actions, R501R-3 on bad debt
        eca = ~(first >= policy.fap_waiting_days) | ~f.fap_screened
        if "agency" in policy.eca_gated_actions:
            agency = agency | eca
        if "bad_debt_write_off" in policy.eca_gated_actions:
            bad_debt = bad_debt | eca | ~(first >= policy.fap_application_days)
    return agency, bad_debt


def _screen_first(f: FactColumns, policy: Policy, wanted: str) -> np.ndarray:
    """Where ``policy_decide._fallback`` screens for FAP (501(r)) instead of following up."""
    if not policy.facility_is_501r or wanted not in policy.eca_gated_actions:
        return np.zeros(len(f.open_balance), dtype=bool)
    return ~f.fap_screened & ~f.plan_kept
