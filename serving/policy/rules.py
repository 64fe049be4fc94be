"""The rules of the decision policy: each rule, and which of them apply to an account.

Each rule is a small function of an account's ``Facts`` returning its (rule_id, sentence), or
None when it does not apply. ``rule_hits`` evaluates them once per account;
``serving.policy.forbidden.forbidden`` turns the hits into blocked actions (per action, the first
rule in precedence order that forbids it) and ``serving.policy.decide`` chooses from the same
hits, so a recommendation never contradicts a block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from features.money import usd
from serving.policy.facts import Facts

if TYPE_CHECKING:
    from serving.policy.config import Policy, StateRule

ACTIONS = (
    "contractual_adjustment",
    "refund_review",
    "resubmit",
    "appeal",
    "hold",
    "follow_up",
    "payment_plan_offer",
    "fap_screen",
    "agency",
    "small_balance_write_off",
    "bad_debt_write_off",
    "denial_write_off",
    "charity_write_off",
)
NOT_REFUND = tuple(a for a in ACTIONS if a != "refund_review")
COLLECTION = ("follow_up", "payment_plan_offer", "agency")
OTHER_WRITE_OFFS = (
    "small_balance_write_off",
    "bad_debt_write_off",
    "denial_write_off",
    "charity_write_off",
)
FROM_PATIENT = ("payment_plan_offer", "agency", "bad_debt_write_off", "small_balance_write_off")
FROM_PATIENT_SIDE = (*FROM_PATIENT, "follow_up")
NOT_WITH_CONTRACT = ("payment_plan_offer", "agency", *OTHER_WRITE_OFFS)
NOT_ON_HOLD = (*COLLECTION, *OTHER_WRITE_OFFS)
NOT_ON_PAYER = ("payment_plan_offer", "agency", "bad_debt_write_off")
AGENCY_AND_BAD_DEBT = ("agency", "bad_debt_write_off")
LABELS = {
    "agency": "agency referral",
    "bad_debt_write_off": "bad-debt write-off",
    "follow_up": "follow-up",
    "payment_plan_offer": "payment-plan offer",
    "resubmit": "resubmission",
    "appeal": "appeal",
}
PR_NAMES = {"1": "deductible", "2": "coinsurance", "3": "copay"}
EPSILON = 0.005
Block = tuple[str, str]  # (rule_id, sentence)
NO_FAP: Block = ("FAP-0", "no financial-assistance approval recorded: not charity")
NO_DENIAL: Block = ("DEN-0", "no current payer denial: not a denial write-off")
PLAN_KEPT: Block = ("PLAN-1", "patient is keeping a payment plan")


@dataclass(frozen=True)
class Context:
    """A policy with its code lists as sets, its per-state values as dicts, its constant numbers
    and sentences (or their constant parts), built once per batch instead of once per account."""

    policy: Policy
    correctable: frozenset[str]
    appealable: frozenset[str]
    final: frozenset[str]
    medicare_types: frozenset[str]
    pr_codes: frozenset[str]
    gated: tuple[str, ...]
    gated_phrase: str
    not_small: Block
    screen: Block
    states: dict[str, StateRule]
    touch_costs: dict[str, float]  # action -> cost_per_touch x its touches
    net_sentences: dict[str, tuple[str, str]]  # action -> ENR-1's sentence around the recovery
    agency_share: float  # what is left of a recovery after the agency's fee
    agency_days: dict[str, int]  # state -> agency_referral_allowed_after_days (listed states)
    fpl_floors: dict[str, float | None]  # state -> no_collection_below_fpl_percent (listed states)
    small_rule: Block  # SMALL-1
    waiting: str  # R501R-1's sentence before the days since the first statement

    @classmethod
    def of(cls, policy: Policy) -> Context:
        gated = tuple(policy.eca_gated_actions)
        phrase = " or ".join(LABELS.get(a, a) for a in gated)
        threshold = usd(policy.small_balance_threshold)
        touches = policy.touches_to_collect
        touch_costs = {
            action: policy.cost_per_touch * getattr(touches, action)
            for action in type(touches).model_fields
        }
        wait = f"no {phrase} until {policy.fap_waiting_days} days after the first"
        states = policy.states
        return cls(
            policy=policy,
            correctable=frozenset(policy.carc.correctable),
            appealable=frozenset(policy.carc.appealable),
            final=frozenset(policy.carc.final),
            medicare_types=frozenset(policy.medicare_bad_debt.allowable_payer_types),
            pr_codes=frozenset(policy.medicare_bad_debt.allowable_pr_codes),
            gated=gated,
            gated_phrase=phrase,
            not_small=("SMALL-0", f"balance not under the {threshold} small-balance threshold"),
            screen=("R501R-2", f"financial-assistance screen required before {phrase} (none)"),
            states=dict(policy.states),
            touch_costs=touch_costs,
            net_sentences={action: _net_sentence(policy, action) for action in touch_costs},
            agency_share=1 - policy.routing.agency_fee_percent / 100,
            agency_days={s: r.agency_referral_allowed_after_days for s, r in states.items()},
            fpl_floors={s: r.no_collection_below_fpl_percent for s, r in states.items()},
            small_rule=("SMALL-1", f"balance under the {threshold} small-balance threshold"),
            waiting=f"financial-assistance period: {wait} statement",
        )

    def state(self, state: str | None) -> StateRule:
        """The rule of a two-letter state, or the policy's state_default."""
        return self.states.get(state or "", self.policy.state_default)


# ---------------------------------------------------------------- sentences


def _net_sentence(policy: Policy, action: str) -> tuple[str, str]:
    """ENR-1's sentence of an action before the expected recovery, and after the probability."""
    touches = getattr(policy.touches_to_collect, action)
    fee = f", its {policy.routing.agency_fee_percent:g}% fee" if action == "agency" else ""
    cost = f"{touches:g} touches at {usd(policy.cost_per_touch)}{fee}"
    return (
        f"{LABELS.get(action, action)}: expected recovery ",
        f") less {cost}: expected net recovery ",
    )


def first_statement(days: float) -> str:
    return "no statement sent yet" if days != days else f"first statement {days:.0f} days ago"


# ---------------------------------------------------------------- rules, in precedence order


def credit_rule(f: Facts) -> Block | None:
    if not f.open_balance < -EPSILON:
        return None
    return (
        "CREDIT-1",
        f"credit balance of {usd(-f.open_balance)} (overpayment): review it for a refund; "
        "a credit is never collected or written off",
    )


def contractual_rule(f: Facts) -> Block | None:
    if f.contractual_carc is None:
        return None
    return (
        "CONTRACT-1",
        f"payer remittance {f.contractual_carc}: the contract decides, adjust "
        f"{usd(f.payer_balance)} (never bad debt, never billed to the patient)",
    )


HOLDS = (
    ("dispute_open", "HOLD-DISPUTE", "No Surprises Act dispute", "no collection, no late fees"),
    ("appeal_open", "HOLD-APPEAL", "appeal with the payer", "hold until the payer decides"),
    (
        "fap_pending",
        "HOLD-FAP",
        "financial-assistance application",
        "collection suspended until it is decided (501(r))",
    ),
)


def hold_rule(f: Facts) -> Block | None:
    if f.dispute_open is False and f.appeal_open is False and f.fap_pending is False:
        return None
    for name, rule_id, what, consequence in HOLDS:
        status = getattr(f, name)
        if status is None:
            return rule_id, f"{what}: status missing in the data, treated as open: {consequence}"
        if status:
            return rule_id, f"{what} open: {consequence}"
    return None


def fap_approved_rule(f: Facts) -> Block | None:
    if not f.fap_approved:
        return None
    return (
        "FAP-1",
        "financial assistance approved: the patient's balance is charity, "
        "not collected and not bad debt",
    )


def low_income_rule(f: Facts, ctx: Context) -> Block | None:
    """A state's income floor (NM: 200% FPL), known from fpl_percent or presumptive eligibility."""
    floor = ctx.state(f.state).no_collection_below_fpl_percent
    if floor is None or f.payer_side:
        return None
    if f.fpl_percent < floor:
        evidence = f"income at {f.fpl_percent:.0f}% of the poverty level per the FAP screen"
    elif f.presumptive_fap_eligible:
        evidence = "presumptively eligible for financial assistance"
    else:
        return None
    name = f.state or "default"
    return (
        f"STATE-{name}-FPL",
        f"{name}: no collection from patients under {floor:g}% of the federal poverty level "
        f"({evidence})",
    )


def payer_side_rule(f: Facts) -> Block | None:
    if not f.payer_side:
        return None
    return (
        "PAYER-1",
        f"{usd(f.payer_balance)} is still with the payer ({f.payer_type}): work the claim; "
        "the patient is not billed for it and it is not bad debt",
    )


def denial_rule(f: Facts, ctx: Context) -> tuple[str, Block] | None:
    """What a current payer denial calls for: resubmit, appeal, follow up or write off."""
    if not f.denial_current:
        return None
    carc, code, days = f.denial_carc or "(no CARC)", f.denial_code, f.days_since_denial
    window = ctx.policy.appeal_window_days
    ago = "on an unknown date" if days != days else f"{days:.0f} days ago"
    write_off = "write off as a denial (not bad debt)"
    if code in ctx.correctable:
        return "resubmit", ("DEN-1", f"denied {carc} {ago}, correctable: fix and resubmit")
    if code in ctx.appealable:
        if f.appeal_lost:
            return "denial_write_off", ("DEN-5", f"appeal of the {carc} denial lost: {write_off}")
        if f.appeal_won:
            return "follow_up", ("DEN-W", f"appeal of the {carc} denial won: follow up payment")
        if not days > window:  # an unknown date counts as inside the window
            left = "" if days != days else f", {window - days:.0f} days left"
            return "appeal", ("DEN-2", f"denied {carc} {ago}: appeal within {window} days{left}")
        return "denial_write_off", (
            "DEN-3",
            f"denied {carc} {ago}, past the {window}-day appeal window: {write_off}",
        )
    if code in ctx.final:
        return "denial_write_off", ("DEN-4", f"denied {carc}, a final denial: {write_off}")
    return "follow_up", (
        "DEN-6",
        f"denied {carc}, a code the policy does not classify: review it with the payer "
        "(not written off automatically)",
    )


class Hits(NamedTuple):
    """The rules of the precedence table (1-8) that apply to one account."""

    credit: Block | None = None
    contractual: Block | None = None
    hold: Block | None = None
    fap_approved: Block | None = None
    low_income: Block | None = None
    payer_side: Block | None = None
    denial: tuple[str, Block] | None = None  # (the action it calls for, the rule)


def rule_hits(f: Facts, ctx: Context) -> Hits:
    """Evaluate rules 1-8 once, each only if its fact can make it apply; a credit balance needs
    no other rule."""
    if f.open_balance < -EPSILON:
        return Hits(credit=credit_rule(f))
    all_closed = f.dispute_open is False and f.appeal_open is False and f.fap_pending is False
    payer_side = f.payer_side
    floor = ctx.fpl_floors.get(
        f.state or "", ctx.policy.state_default.no_collection_below_fpl_percent
    )
    return _new_hits(
        Hits,
        (
            None,
            None if f.contractual_carc is None else contractual_rule(f),
            None if all_closed else hold_rule(f),
            fap_approved_rule(f) if f.fap_approved else None,
            None if floor is None or payer_side else low_income_rule(f, ctx),
            payer_side_rule(f) if payer_side else None,
            denial_rule(f, ctx) if f.denial_current else None,
        ),
    )


_new_hits = tuple.__new__  # Hits from a tuple of its fields, without NamedTuple's keywords
