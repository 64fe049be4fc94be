"""What an action must satisfy before it is recorded: its shape, the policy on today's facts,
a reason for an override, and who may approve a write-off (``serving.worklist.actions`` runs
these checks in the transaction that records the action; ``serving.worklist.approvals`` runs
them again when a pending write-off is approved).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from features.errors import ArscoreError
from features.money import CENT, dollars
from serving.access.keys import Principal
from serving.policy.config import Policy
from serving.policy.recommend import forbidden_actions
from serving.worklist.current_facts import AccountNow
from serving.worklist.store import WRITE_OFF

RECORDED_ACTIONS = (
    "worked",
    "payment_plan",
    "fap_referral",
    "resubmitted",
    "appealed",
    WRITE_OFF,
)
OUTCOMES = (
    "promise_to_pay",
    "paid",
    "no_contact",
    "left_message",
    "callback_requested",
    "dispute",
    "refused_to_pay",
    "wrong_contact",
)
WRITE_OFF_CATEGORIES = {
    "contractual": "contractual_adjustment",
    "denial": "denial_write_off",
    "bad_debt": "bad_debt_write_off",
    "charity": "charity_write_off",
    "small_balance": "small_balance_write_off",
    "administrative": None,
}
ActionName = Literal[RECORDED_ACTIONS]  # type: ignore[valid-type]
Outcome = Literal[OUTCOMES]  # type: ignore[valid-type]
WriteOffCategory = Literal[tuple(WRITE_OFF_CATEGORIES)]  # type: ignore[valid-type]
CARC_REQUIRED = frozenset({"contractual", "denial"})
POLICY_ACTION = {
    "worked": "follow_up",
    "payment_plan": "payment_plan_offer",
    "fap_referral": "fap_screen",
    "resubmitted": "resubmit",
    "appealed": "appeal",
}
# Recommendations a recorded action carries out (anything else is an override).
CARRIES_OUT = {
    "worked": frozenset({"follow_up", "payment_plan_offer", "fap_screen", "agency"}),
    "payment_plan": frozenset({"payment_plan_offer"}),
    "fap_referral": frozenset({"fap_screen"}),
    "resubmitted": frozenset({"resubmit"}),
    "appealed": frozenset({"appeal"}),
}
APPROVER_ROLES = frozenset({"approver", "admin"})
# Rules that also refuse an administrative write-off (it has no policy action of its own).
ADMINISTRATIVE_BLOCKERS = ("HOLD-", "CREDIT-", "CONTRACT-")


class ActionError(ArscoreError):
    """Base class: the action was not recorded."""


class ActionInvalid(ActionError):
    """The request is incomplete or inconsistent (the app answers 422)."""


class ActionForbidden(ActionError):
    """The policy forbids the action (409); names the rule."""

    def __init__(self, rule_id: str, sentence: str, action: str):
        self.rule_id, self.sentence, self.action = rule_id, sentence, action
        super().__init__(f"{action} refused by policy rule {rule_id}: {sentence}")


class ApprovalRequired(ActionError):
    """The approver given may not approve this write-off (403)."""


class AccountNotFound(ActionError):
    """The claim has no open balance on the worklist, or none as of today (404)."""


@dataclass(frozen=True)
class ActionRequest:
    """What the collector sends (validated for shape by the router's schema)."""

    action: str
    outcome: str | None = None
    category: str | None = None
    amount: Decimal | None = None
    carc_code: str | None = None
    note: str | None = None
    override_reason: str | None = None
    score_id: str | None = None


def policy_action(request: ActionRequest) -> str | None:
    """The policy action a recorded action corresponds to (None: administrative write-off)."""
    if request.action == WRITE_OFF:
        return WRITE_OFF_CATEGORIES[request.category or ""]
    return POLICY_ACTION[request.action]


def check_shape(request: ActionRequest, now: AccountNow) -> Decimal | None:
    """Fields each action needs; the write-off amount (default: what is still open)."""
    if request.action not in RECORDED_ACTIONS:
        raise ActionInvalid(f"action: expected one of {', '.join(RECORDED_ACTIONS)}")
    if request.action == "worked" and request.outcome is None:
        raise ActionInvalid(f"outcome: a worked account needs one of {', '.join(OUTCOMES)}")
    if request.action != WRITE_OFF:
        return None
    if request.category not in WRITE_OFF_CATEGORIES:
        raise ActionInvalid(f"category: a write-off needs one of {', '.join(WRITE_OFF_CATEGORIES)}")
    if not (request.note or "").strip():
        raise ActionInvalid("note: a write-off needs a note saying why")
    if request.category in CARC_REQUIRED and not request.carc_code:
        raise ActionInvalid(
            f"carc_code: a {request.category} write-off needs the CARC (e.g. CO-45)"
        )
    still_open = dollars(now.still_open_cents)
    amount = still_open if request.amount is None else request.amount
    if amount <= 0 or amount != amount.quantize(CENT) or amount > still_open:
        raise ActionInvalid(
            f"amount: expected more than $0 and at most the ${max(still_open, Decimal(0)):,.2f} "
            f"still open (open balance ${dollars(now.open_balance_cents):,.2f} as of "
            f"{now.as_of}, less ${dollars(now.unposted_cents):,.2f} written off here and not "
            "yet posted), in whole cents"
        )
    return amount.quantize(CENT)


def check_policy(request: ActionRequest, facts: Mapping[str, Any], policy: Policy) -> None:
    """Refuse what the policy forbids on these facts, naming the rule."""
    blocked = forbidden_actions(facts, policy)
    wanted = policy_action(request)
    if wanted is not None:
        if wanted in blocked:
            raise ActionForbidden(*blocked[wanted], wanted)
        return
    rule = blocked.get("small_balance_write_off")
    if rule is not None and rule[0].startswith(ADMINISTRATIVE_BLOCKERS):
        raise ActionForbidden(*rule, "administrative_write_off")


def is_override(request: ActionRequest, recommended: str) -> bool:
    """Whether the action departs from the recommendation."""
    if request.action == WRITE_OFF:
        return WRITE_OFF_CATEGORIES[request.category or ""] != recommended
    return recommended not in CARRIES_OUT[request.action]


def check_override(request: ActionRequest, recommended: str) -> bool:
    """Whether the action is an override; refuses one without a reason."""
    override = is_override(request, recommended)
    if override and not (request.override_reason or "").strip():
        raise ActionInvalid(
            f"override_reason: the recommendation is '{recommended}'; doing something else "
            "needs a reason"
        )
    return override


def needs_approval(
    request: ActionRequest, amount: Decimal | None, written_off_before: Decimal, threshold: Decimal
) -> bool:
    """Every administrative write-off, and write-offs that take what the account has had
    written off here in total above the threshold."""
    if request.action != WRITE_OFF:
        return False
    if request.category == "administrative":
        return True
    return amount is not None and written_off_before + amount > threshold


def check_approver(requester: Principal, approver: Principal) -> None:
    """The approver is a person of an approver role, and not the person who asked."""
    if approver.role not in APPROVER_ROLES:
        raise ApprovalRequired(f"the approver's role '{approver.role}' may not approve")
    if approver.user is None:
        raise ApprovalRequired(
            "an approval is a person's: the approver's key must be issued to a user "
            "(arscore keys create --user)"
        )
    if approver.user == requester.user or approver.key_id == requester.key_id:
        raise ApprovalRequired(
            f"the approver must be another user than the one who asked for the write-off "
            f"('{approver.user}' holds both keys)"
        )
