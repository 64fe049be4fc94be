"""The decision: the next action of one account, in the precedence order of ``serving.policy``.

Rules 1-8 decide alone. On the patient side (9) the model's expected net recovery chooses among
the actions the rules leave allowed; the chosen action is never one that ``forbidden`` blocked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypedDict

from features.errors import ArscoreError
from serving.policy.facts import Facts
from serving.policy.forbidden import forbidden
from serving.policy.rules import (
    EPSILON,
    PR_NAMES,
    Block,
    Context,
    first_statement,
    rule_hits,
    usd,
)

WORKING_ACTIONS = ("follow_up", "payment_plan_offer", "agency", "resubmit", "appeal")
_WORKING = frozenset(WORKING_ACTIONS)


class Reason(TypedDict):
    """Why an action was recommended: a rule's id and sentence, or one of the model's reasons."""

    source: Literal["rule", "model"]
    rule_id: str
    sentence: str


@dataclass(slots=True)
class Recommendation:
    """The next action for one account, why, under which policy, and what the rules forbade.

    ``expected_net_recovery`` is in dollars for actions that work the balance (None for
    write-offs, refund review, contractual adjustment, hold, and when there is no score).
    ``medicare_bad_debt_claimable`` is set on bad-debt write-offs only: True or False, or None
    when the data cannot tell (the PR code of the balance is unknown).
    """

    action: str
    reasons: list[Reason]
    policy_version: str
    expected_net_recovery: float | None = None
    blocked_actions: dict[str, Block] = field(default_factory=dict)
    medicare_bad_debt_claimable: bool | None = None


def _rule(block: Block) -> Reason:
    return {"source": "rule", "rule_id": block[0], "sentence": block[1]}


def _model_reasons(raw: Sequence[dict]) -> list[Reason]:
    """The scorer's reasons as model reasons; each needs a 'sentence'."""
    reasons: list[Reason] = []
    for reason in raw:
        if "sentence" not in reason:
            raise ArscoreError(f"model reason without a 'sentence': keys {sorted(reason)}")
        rule_id = reason.get("rule_id") or reason.get("feature") or "MODEL"
        reasons.append({"source": "model", "rule_id": str(rule_id), "sentence": reason["sentence"]})
    return reasons


@dataclass(slots=True)
class _Account:
    """One account being decided: its facts, its blocks, the model's reasons."""

    f: Facts
    ctx: Context
    blocked: dict[str, Block]
    model_reasons: Sequence[dict]

    def allowed(self, action: str) -> bool:
        return action not in self.blocked

    def net(self, action: str) -> float:
        """Expected net recovery of a collection action, in dollars (NaN without a score)."""
        recovery = self.f.expected_recovery
        if action == "agency":
            recovery *= self.ctx.agency_share
        return recovery - self.ctx.touch_costs[action]

    def net_sentence(self, action: str) -> Reason:
        """The model's reason in dollars: expected recovery less the cost of the touches."""
        f = self.f
        before, after = self.ctx.net_sentences[action]
        sentence = f"{before}{usd(f.expected_recovery)} (probability {f.probability:.2f}{after}"
        return {"source": "model", "rule_id": "ENR-1", "sentence": sentence + usd(self.net(action))}

    def make(
        self, action: str, reasons: list[Reason], claimable: bool | None = None
    ) -> Recommendation:
        """The recommendation; its expected net recovery is set for actions that work a balance."""
        if action in self.blocked:  # a bug in the precedence, never a policy outcome
            rule_id = self.blocked[action][0]
            raise AssertionError(f"{action} recommended although {rule_id} forbids it")
        net = self.net(action) if action in _WORKING else None
        if net is not None and net != net:
            net = None
        version = self.ctx.policy.version
        return Recommendation(action, reasons, version, net, self.blocked, claimable)

    def by_model(self, action: str, *rules: Block, net_of: str | None = None) -> Recommendation:
        """A model-driven recommendation: the scorer's reasons, the ENR sentence, the rules."""
        reasons = _model_reasons(self.model_reasons)
        net_of = net_of or (action if action in _WORKING else None)
        if net_of is not None:
            reasons.append(self.net_sentence(net_of))
        for rule in rules:
            reasons.append(_rule(rule))
        return self.make(action, reasons)


def decide(f: Facts, ctx: Context, model_reasons: Sequence[dict] = ()) -> Recommendation:
    """The first rule that applies decides (table in ``serving.policy``); else the patient side."""
    hits = rule_hits(f, ctx)
    account = _Account(f, ctx, forbidden(f, ctx, hits), model_reasons)
    if hits.credit is not None:
        return account.make("refund_review", [_rule(hits.credit)])
    if abs(f.open_balance) <= EPSILON:
        return account.make("hold", [_rule(("ZERO-1", "no open balance: nothing to do"))])
    if hits.contractual is not None:
        return account.make("contractual_adjustment", [_rule(hits.contractual)])
    if hits.hold is not None:
        return account.make("hold", [_rule(hits.hold)])
    if hits.fap_approved is not None and not f.payer_side:
        return account.make("charity_write_off", [_rule(hits.fap_approved)])
    if hits.denial is not None:
        action, rule = hits.denial
        return account.make(action, [_rule(rule)])
    if hits.low_income is not None:
        if not f.fap_screened:
            return account.make("fap_screen", [_rule(hits.low_income)])
        documented = ("FPL-CHARITY", "financial-assistance screen recorded: write off as charity")
        return account.make("charity_write_off", [_rule(hits.low_income), _rule(documented)])
    if hits.payer_side is not None:
        return account.make("follow_up", [_rule(hits.payer_side)])
    return _patient_side(account)


def _patient_side(account: _Account) -> Recommendation:
    """Rule 9: the model's expected net recovery chooses among the allowed patient actions."""
    f, policy = account.f, account.ctx.policy
    routing, effort, plan = policy.routing, policy.collection_effort, policy.routing.payment_plan
    if f.expected_recovery != f.expected_recovery or f.probability != f.probability:
        return account.make("follow_up", [_rule(("MODEL-0", "no score: standard follow-up"))])
    floor, small_rule = routing.min_expected_net_recovery, account.ctx.small_rule
    small = f.open_balance < policy.small_balance_threshold
    under_small = small and account.allowed("small_balance_write_off")
    if under_small and account.net("follow_up") <= floor:
        return account.by_model("small_balance_write_off", small_rule, net_of="follow_up")
    if f.probability < routing.fap_screen_below_probability and not f.fap_screened:
        rule = ("FAP-SCREEN-1", "low probability and no financial-assistance screen yet")
        return account.by_model("fap_screen", rule, net_of="follow_up")
    if (
        f.open_balance >= plan.min_balance
        and plan.min_probability <= f.probability <= plan.max_probability
        and not f.plan_kept
        and account.net("payment_plan_offer") > floor
        and account.allowed("payment_plan_offer")
    ):
        return account.by_model("payment_plan_offer", *_interest_cap(account))
    first = f.days_since_first_statement
    if f.n_statements < effort.min_statements or not first >= effort.min_days_since_first_statement:
        done = f"{f.n_statements} of {effort.min_statements} statements, {first_statement(first)}"
        cycle = ("CYCLE-1", f"collection cycle under way ({done})")
        return account.by_model("follow_up", cycle)
    if f.probability >= routing.agency_min_probability and account.net("agency") > floor:
        if account.allowed("agency"):
            return account.by_model("agency", *_credit_reporting(account))
        return _fallback(account, "agency")
    if under_small:
        return account.by_model("small_balance_write_off", small_rule, net_of="agency")
    if account.allowed("bad_debt_write_off"):
        return _bad_debt(account)
    return _fallback(account, "bad_debt_write_off")


def _fallback(account: _Account, wanted: str) -> Recommendation:
    """A wanted gated action is forbidden: screen for FAP when that is missing, else follow up."""
    f, ctx = account.f, account.ctx
    block = account.blocked[wanted]
    net_of = "agency" if wanted == "agency" else None
    screen_needed = ctx.policy.facility_is_501r and wanted in ctx.gated and not f.fap_screened
    if screen_needed and block[0] != "PLAN-1":
        rules = (block,) if block[0] == "R501R-2" else (block, ctx.screen)
        return account.by_model("fap_screen", *rules, net_of=net_of)
    return account.by_model("follow_up", block)


def _bad_debt(account: _Account) -> Recommendation:
    """A bad-debt write-off, with whether it is claimable as Medicare bad debt (42 CFR 413.89)."""
    f = account.f
    since = first_statement(f.days_since_first_statement)
    documented = (
        "BD-1",
        f"collection effort documented ({f.n_statements} statements, {since}) "
        "and an agency would not pay",
    )
    reasons = _model_reasons(account.model_reasons)
    reasons += [account.net_sentence("agency"), _rule(documented)]
    claimable, medicare = _medicare_claim(account)
    if medicare is not None:
        reasons.append(_rule(medicare))
    return account.make("bad_debt_write_off", reasons, claimable)


def _medicare_claim(account: _Account) -> tuple[bool | None, Block | None]:
    """Whether a bad debt is claimable as Medicare bad debt, and the rule that says so."""
    f, ctx = account.f, account.ctx
    if f.payer_type == "medicare_advantage":
        sentence = "Medicare Advantage: not allowable Medicare bad debt (42 CFR 413.89); "
        return False, ("MCR-BD-3", sentence + "ordinary bad-debt rules apply")
    if f.payer_type not in ctx.medicare_types:
        return False, None
    code = f.patient_pr_code
    if code is None:
        sentence = "PR code of the balance unknown: confirm deductible/coinsurance (PR-1/PR-2) "
        return None, ("MCR-BD-4", sentence + "before claiming it as Medicare bad debt")
    if code in ctx.pr_codes:
        what = PR_NAMES.get(code, "patient responsibility")
        sentence = f"claimable as Medicare bad debt: PR-{code} {what} after documented effort"
        return True, ("MCR-BD-OK", sentence + " (42 CFR 413.89)")
    sentence = f"PR-{code} is not deductible or coinsurance: ordinary bad debt, "
    return False, ("MCR-BD-2", sentence + "not claimable as Medicare bad debt")


def _interest_cap(account: _Account) -> list[Block]:
    f = account.f
    cap = account.ctx.state(f.state).interest_cap_percent
    if cap is None:
        return []
    name = f.state or "default"
    return [(f"STATE-{name}-INTEREST", f"{name}: plan interest at most {cap:g}% a year")]


def _credit_reporting(account: _Account) -> list[Block]:
    f = account.f
    if account.ctx.state(f.state).credit_reporting_allowed:
        return []
    name = f.state or "default"
    sentence = f"{name}: medical debt is not credit-reported; place with that instruction"
    return [(f"STATE-{name}-CREDIT", sentence)]
