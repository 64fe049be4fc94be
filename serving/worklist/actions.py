"""What a collector did on an account: checked against the policy, recorded in the audit chain.

An action names the score it acted on (the account's current score unless the request names
an earlier score of the same claim). It is refused when:

- the policy forbids the corresponding policy action (``serving.policy.recommend.forbidden_actions``
  on the facts stored with the score): 409 with the rule's id and sentence. A write-off category
  maps to its policy action (bad debt -> ``bad_debt_write_off`` ...); an *administrative* write-off
  has no policy action of its own: it is refused on an account the policy holds, on a credit balance
  and where the contract decides (the rule that forbids a small-balance write-off for those
  reasons), and always needs an approver;
- it departs from the recommendation without an ``override_reason`` (422);
- it is a write-off without a category, a note, or a CARC where the category has one
  (contractual, denial) (422), or for more than the open balance (422);
- it is a write-off above ``write_off_approval_above`` (or administrative) without a second
  user of role ``approver`` or ``admin`` (403).

A recorded action is one ``account_action`` record of the audit chain (its ``score_id`` is the
action's id, its payload links the ``score_id`` acted on) and one row of ``account_actions``,
written after the audit record: the chain is the evidence, the table its index.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy as sa

from features.errors import ArscoreError
from features.money import CENT
from serving.access.keys import Principal
from serving.audit.records import AuditEntry
from serving.audit.store import AuditStore
from serving.policy.config import Policy
from serving.policy.recommend import forbidden_actions
from serving.store.engine import write_transaction
from serving.worklist.store import WRITE_OFF, WorklistRow, account_actions

ACTION_KIND = "account_action"
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
    """A second user with the approver role is needed and was not given (403)."""


class AccountNotFound(ActionError):
    """The claim has no open balance on the worklist (404)."""


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


@dataclass(frozen=True)
class RecordedAction:
    """What was recorded."""

    action_id: str
    claim_id: str
    action: str
    acted_on: date
    recorded_at: datetime
    score_id: str
    recommended_action: str
    override: bool
    amount: Decimal | None
    approver_key_id: str | None


def policy_action(request: ActionRequest) -> str | None:
    """The policy action a recorded action corresponds to (None: administrative write-off)."""
    if request.action == WRITE_OFF:
        return WRITE_OFF_CATEGORIES[request.category or ""]
    return POLICY_ACTION[request.action]


def check_shape(request: ActionRequest, account: WorklistRow) -> Decimal | None:
    """Fields each action needs; the write-off amount (default: the open balance)."""
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
    balance = account.open_balance
    amount = balance if request.amount is None else request.amount
    if amount <= 0 or amount != amount.quantize(CENT) or amount > balance:
        raise ActionInvalid(
            f"amount: expected more than $0 and at most the open balance ${balance:,.2f}, "
            "in whole cents"
        )
    return amount


def check_policy(request: ActionRequest, account: WorklistRow, policy: Policy) -> None:
    """Refuse what the policy forbids on this account, naming the rule."""
    blocked = forbidden_actions(account.facts, policy)
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


def needs_approval(request: ActionRequest, amount: Decimal | None, threshold: Decimal) -> bool:
    """Write-offs above the threshold, and every administrative write-off."""
    if request.action != WRITE_OFF:
        return False
    return request.category == "administrative" or (amount is not None and amount > threshold)


def check_approver(
    collector: Principal, approver: Principal | None, amount: Decimal | None, threshold: Decimal
) -> None:
    """A second user, of an approver role, must stand behind the write-off."""
    what = f"a write-off of ${amount:,.2f}" if amount is not None else "this write-off"
    rule = f"above ${threshold:,.2f} or administrative"
    if approver is None:
        raise ApprovalRequired(
            f"{what} ({rule}) needs a second user with the approver role: send their API key "
            "as X-Approver-Key"
        )
    if approver.role not in APPROVER_ROLES:
        raise ApprovalRequired(f"the X-Approver-Key's role '{approver.role}' may not approve")
    if approver.key_id == collector.key_id:
        raise ApprovalRequired("the approver must be a second user, not the collector")


def _entry(
    request: ActionRequest,
    account: WorklistRow,
    collector: Principal,
    approver: Principal | None,
    details: dict[str, Any],
    action_id: str,
) -> AuditEntry:
    payload = {
        "action": request.action,
        "outcome": request.outcome,
        "category": request.category,
        "policy_action": policy_action(request),
        "amount": details["amount"],
        "carc_code": request.carc_code,
        "note": request.note,
        "override": details["override"],
        "override_reason": request.override_reason,
        "recommended_action": account.action,
        "score_id": details["score_id"],
        "acted_on": details["acted_on"],
        "open_balance": account.open_balance,
        "approver_key_id": None if approver is None else approver.key_id,
        "approver_role": None if approver is None else approver.role,
    }
    return AuditEntry(
        kind=ACTION_KIND,
        requester_key_id=collector.key_id,
        requester_role=collector.role,
        model_name=account.model_name,
        model_version=account.model_version,
        model_sha256=account.model_sha256,
        policy_version=account.policy_version,
        claim_id=account.claim_id,
        payload=payload,
        score_id=action_id,
    )


def acted_on_score(request: ActionRequest, account: WorklistRow, audit: AuditStore) -> str:
    """The score the action acted on: the account's current one, or an earlier one named."""
    if request.score_id is None or request.score_id == account.score_id:
        return account.score_id
    record = audit.get(request.score_id)
    if record is None or record.kind != "score" or record.claim_id != account.claim_id:
        raise ActionInvalid(f"score_id: no score of claim {account.claim_id} has this id")
    return request.score_id


def record_action(
    request: ActionRequest,
    account: WorklistRow,
    *,
    collector: Principal,
    approver: Principal | None,
    policy: Policy,
    approval_above: Decimal,
    audit: AuditStore,
    today: date,
) -> RecordedAction:
    """Check the action, then record it in the audit chain and the actions table."""
    amount = check_shape(request, account)
    check_policy(request, account, policy)
    override = is_override(request, account.action)
    if override and not (request.override_reason or "").strip():
        raise ActionInvalid(
            f"override_reason: the recommendation is '{account.action}'; doing something else "
            "needs a reason"
        )
    if needs_approval(request, amount, approval_above):
        check_approver(collector, approver, amount, approval_above)
    else:
        approver = None
    score_id = acted_on_score(request, account, audit)
    action_id = uuid.uuid4().hex
    details = {"amount": amount, "override": override, "score_id": score_id, "acted_on": today}
    (record,) = audit.append([_entry(request, account, collector, approver, details, action_id)])
    probability = account.probability_collected
    with write_transaction(audit.engine) as connection:
        connection.execute(
            sa.insert(account_actions).values(
                action_id=action_id,
                claim_id=account.claim_id,
                acted_on=today,
                created_at=record.created_at,
                action=request.action,
                outcome=request.outcome,
                category=request.category,
                carc_code=request.carc_code,
                amount_cents=None if amount is None else int(amount * 100),
                note=request.note,
                override_reason=request.override_reason,
                recommended_action=account.action,
                score_id=score_id,
                collector_key_id=collector.key_id,
                approver_key_id=None if approver is None else approver.key_id,
                approver_role=None if approver is None else approver.role,
                payer_id=account.payer_id,
                payer_type=account.payer_type,
                model_version=account.model_version,
                policy_version=account.policy_version,
                probability_collected=probability,
            )
        )
    return RecordedAction(
        action_id=action_id,
        claim_id=account.claim_id,
        action=request.action,
        acted_on=today,
        recorded_at=record.created_at.astimezone(UTC),
        score_id=score_id,
        recommended_action=account.action,
        override=override,
        amount=amount,
        approver_key_id=None if approver is None else approver.key_id,
    )
