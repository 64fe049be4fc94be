"""The decision policy: which next action each open balance gets, and which actions are forbidden.

Rules decide first; the model only chooses among the patient-side actions the rules allow. The
policy is a YAML file (packaged default: ``serving/policies/default.yaml``) whose ``version`` is
stamped on every recommendation. Precedence, the first rule that applies decides:

| #  | rule ids                 | when                                   | action                 |
|----|--------------------------|----------------------------------------|------------------------|
| 1  | CREDIT-1                 | open_balance < 0 (overpayment)         | refund_review          |
| 1b | ZERO-1                   | open balance is zero                   | hold                   |
| 2  | CONTRACT-1               | CO + contractual CARC, payer side      | contractual_adjustment |
| 3  | HOLD-DISPUTE, -APPEAL,   | dispute, appeal or FAP application     | hold                   |
|    | -FAP                     | open (a missing flag counts as open)   |                        |
| 4  | FAP-1                    | FAP approved, patient side             | charity_write_off      |
| 5  | DEN-1                    | current denial, correctable CARC       | resubmit               |
| 6  | DEN-2                    | appealable CARC inside the window      | appeal                 |
|    | DEN-3, DEN-5, DEN-4      | past the window, appeal lost, final    | denial_write_off       |
|    | DEN-W, DEN-6             | appeal won, CARC in no list            | follow_up              |
| 7  | STATE-XX-FPL             | state income floor (NM: 200% FPL)      | fap_screen / charity   |
| 8  | PAYER-1                  | balance still with the payer           | follow_up              |
| 9  | model (ENR-1) + gates    | patient side                           | see below              |

A denial is *current* when the balance is with the payer and no payment came after it. The
state income floor applies when ``fpl_percent`` is under it or ``presumptive_fap_eligible`` is
true (a FAP approval is rule 4): screen first, charity once a screen is recorded.

Rule 9, with ENR(action) = expected_recovery - cost_per_touch x touches(action) (agency: less
its fee), in order: MODEL-0 no score -> follow_up; SMALL-1 balance under the threshold and a
follow-up does not pay -> small_balance_write_off; FAP-SCREEN-1 probability under
``fap_screen_below_probability`` and no screen -> fap_screen; larger balance, moderate
probability, ENR > 0 -> payment_plan_offer; CYCLE-1 collection effort not yet documented ->
follow_up; then agency when it pays, else small_balance_write_off or bad_debt_write_off (BD-1).
A forbidden agency/bad debt falls back to fap_screen when the FAP screen is missing (501(r)),
else to follow_up, quoting the rule that forbade it.

Gates (``forbidden_actions``; each action keeps the first rule that forbids it): R501R-1 no
gated action (``eca_gated_actions``) before ``fap_waiting_days`` after the first statement,
R501R-2 nor without a FAP screen, R501R-3 no bad debt before ``fap_application_days``
(501(r) facilities); STATE-XX-AGENCY waiting days; EFFORT-1 collection effort documented;
MCR-BD-1 Medicare's effort; PLAN-1 a kept payment plan; PAYER-1 no patient action on a payer
balance; FAP-0, SMALL-0, DEN-0 write-offs whose category does not apply. Bad debt of Medicare
fee-for-service deductible/coinsurance (PR-1/PR-2) is claimable as Medicare bad debt
(MCR-BD-OK); other PR codes (MCR-BD-2), unknown codes (MCR-BD-4) and Medicare Advantage
(MCR-BD-3) are ordinary bad debt. STATE-XX-CREDIT and STATE-XX-INTEREST qualify an agency
placement or a plan offer.

Modules: ``serving.policy`` (this: configuration and API), ``serving.policy_facts`` (facts from
snapshot columns), ``serving.policy_rules`` (rules), ``serving.policy_forbidden`` (forbidden
actions), ``serving.policy_decide``, ``serving.policy_vector`` (the actions alone of a whole
batch at once, for the batch scorer), ``serving.policy_records`` (facts of dict records, for the
API: no DataFrame).
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from features.errors import ArscoreError
from features.schema import PAYER_TYPES
from serving.policy_decide import Reason, Recommendation, decide
from serving.policy_facts import Facts, account_facts
from serving.policy_forbidden import forbidden
from serving.policy_records import records_facts
from serving.policy_rules import ACTIONS, Block, Context

__all__ = [
    "ACTIONS",
    "Block",
    "Policy",
    "Reason",
    "Recommendation",
    "check_model_reasons",
    "forbidden_actions",
    "iter_recommendations",
    "load_policy",
    "parse_policy",
    "recommend",
    "recommend_records",
]

DEFAULT_POLICY = "default.yaml"

PayerType = Literal[PAYER_TYPES]  # type: ignore[valid-type]
StateCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Dollars = Annotated[float, Field(ge=0)]
Days = Annotated[int, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_codes(value: Any) -> Any:
    """CARC/PR codes written as YAML numbers (16) or strings ("16") are kept as strings."""
    if isinstance(value, list | tuple):
        return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    return value


class Touches(_Strict):
    """Expected touches until each action resolves."""

    follow_up: float = Field(ge=0)
    payment_plan_offer: float = Field(ge=0)
    fap_screen: float = Field(ge=0)
    agency: float = Field(ge=0)
    resubmit: float = Field(ge=0)
    appeal: float = Field(ge=0)


class CarcCodes(_Strict):
    """Denial CARC codes by what to do with them; a code belongs to one list at most."""

    correctable: tuple[str, ...]
    appealable: tuple[str, ...]
    final: tuple[str, ...]
    contractual: tuple[str, ...]

    _codes = field_validator("*", mode="before")(_as_codes)

    @pydantic.model_validator(mode="after")
    def _disjoint(self) -> CarcCodes:
        seen: dict[str, str] = {}
        for name in ("correctable", "appealable", "final", "contractual"):
            for code in getattr(self, name):
                if code in seen:
                    raise ValueError(f"CARC {code} is in both '{seen[code]}' and '{name}'")
                seen[code] = name
        return self


class StateRule(_Strict):
    """What a state's law changes; an omitted field means no restriction."""

    credit_reporting_allowed: bool = True
    agency_referral_allowed_after_days: Days = 0
    no_collection_below_fpl_percent: float | None = Field(None, gt=0)
    interest_cap_percent: float | None = Field(None, ge=0)


class TeamFilter(_Strict):
    """Accounts a worklist team works; an omitted filter matches everything."""

    payer_types: tuple[PayerType, ...] | None = None
    responsibility: tuple[Literal["payer", "patient"], ...] | None = None

    def matches(self, payer_type: str, responsibility: str) -> bool:
        """Whether an account with this payer type and responsibility belongs to the team."""
        return (self.payer_types is None or payer_type in self.payer_types) and (
            self.responsibility is None or responsibility in self.responsibility
        )


class MedicareBadDebt(_Strict):
    """42 CFR 413.89: which bad debt is claimable on the Medicare cost report, after what effort."""

    allowable_payer_types: tuple[PayerType, ...]
    allowable_pr_codes: tuple[str, ...]
    min_statements: Days
    min_days_since_first_statement: Days

    _codes = field_validator("allowable_pr_codes", mode="before")(_as_codes)

    @field_validator("allowable_payer_types")
    @classmethod
    def _no_medicare_advantage(cls, types: tuple[str, ...]) -> tuple[str, ...]:
        if "medicare_advantage" in types:
            raise ValueError("Medicare Advantage debt is never allowable Medicare bad debt")
        return types


class CollectionEffort(_Strict):
    """Reasonable collection effort before an agency referral or a bad-debt write-off."""

    min_statements: Days
    min_days_since_first_statement: Days


class PaymentPlanRouting(_Strict):
    """Which patient balances get a payment-plan offer, and when a plan counts as kept."""

    min_balance: Dollars
    min_probability: Probability
    max_probability: Probability
    kept_within_days: Days

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> PaymentPlanRouting:
        if self.min_probability > self.max_probability:
            raise ValueError("min_probability must not exceed max_probability")
        return self


class Routing(_Strict):
    """Model-driven routing of patient balances by probability and expected net recovery."""

    min_expected_net_recovery: float
    fap_screen_below_probability: Probability
    agency_min_probability: Probability
    agency_fee_percent: float = Field(ge=0, lt=100)
    payment_plan: PaymentPlanRouting


class Policy(_Strict):
    """A decision policy as loaded from YAML; every field is required (see default.yaml)."""

    version: str = Field(min_length=1)
    cost_per_touch: Dollars
    touches_to_collect: Touches
    small_balance_threshold: Dollars
    risk_band_cuts: tuple[float, ...]
    facility_is_501r: bool
    eca_gated_actions: tuple[Literal["agency", "bad_debt_write_off"], ...]
    fap_waiting_days: Days
    fap_application_days: Days
    appeal_window_days: Days
    carc: CarcCodes
    state_default: StateRule
    states: dict[StateCode, StateRule]
    teams: dict[str, TeamFilter]
    medicare_bad_debt: MedicareBadDebt
    collection_effort: CollectionEffort
    routing: Routing

    @field_validator("risk_band_cuts")
    @classmethod
    def _ascending(cls, cuts: tuple[float, ...]) -> tuple[float, ...]:
        if list(cuts) != sorted(set(cuts)) or any(not 0 < c < 1 for c in cuts):
            raise ValueError("cut points must be ascending and strictly between 0 and 1")
        return cuts

    @pydantic.model_validator(mode="after")
    def _application_after_waiting(self) -> Policy:
        if self.fap_application_days < self.fap_waiting_days:
            raise ValueError("fap_application_days must be at least fap_waiting_days")
        return self

    def state_rule(self, state: str | None) -> StateRule:
        """The rule of a two-letter state, or state_default when it is not listed."""
        return self.states.get(state or "", self.state_default)


def _problems(error: pydantic.ValidationError) -> str:
    lines = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        shown = repr(problem.get("input"))
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        got = "" if problem["type"] == "missing" else f" (got {shown})"
        lines.append(f"  - field '{field}': {problem['msg']}{got}")
    return "\n".join(lines)


def parse_policy(text: str, source: str) -> Policy:
    """A Policy from YAML text; errors name the source and the field path."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ArscoreError(f"{source}: not valid YAML{where}") from None
    if not isinstance(raw, dict):
        raise ArscoreError(f"{source}: expected a mapping of policy fields at the top level")
    try:
        return Policy.model_validate(raw)
    except pydantic.ValidationError as error:
        count = error.error_count()
        raise ArscoreError(
            f"{source}: invalid policy, {count} problem(s):\n{_problems(error)}"
        ) from None


def load_policy(path: Path | None = None) -> Policy:
    """The policy in a YAML file, or the packaged default when ``path`` is None."""
    if path is None:
        resource = importlib.resources.files("serving.policies").joinpath(DEFAULT_POLICY)
        return parse_policy(resource.read_text(encoding="utf-8"), f"packaged {DEFAULT_POLICY}")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ArscoreError(f"{path}: cannot read the policy file ({error.strerror})") from None
    return parse_policy(text, str(path))


def iter_recommendations(
    rows: pd.DataFrame, policy: Policy, model_reasons: list[list[dict]] | None = None
) -> Iterator[Recommendation]:
    """One recommendation per snapshot row, in order, made one at a time.

    ``rows`` carries the snapshot columns plus the model's ``probability_collected`` and
    ``expected_recovery``; ``model_reasons`` are the scorer's reasons per row (dicts with a
    ``sentence``), quoted when the model decided. A nightly batch streams these to its writer
    instead of holding millions of recommendations at once.
    """
    check_model_reasons(model_reasons, len(rows))
    return _decisions(account_facts(rows, policy), policy, model_reasons)


def check_model_reasons(model_reasons: Sized | None, n_rows: int) -> None:
    """Refuse model reasons that are not one list per row."""
    if model_reasons is not None and len(model_reasons) != n_rows:
        raise ArscoreError(
            f"policy input: {len(model_reasons)} lists of model reasons for {n_rows} rows"
        )


def _decisions(
    facts: Iterable[Facts], policy: Policy, model_reasons: list[list[dict]] | None
) -> Iterator[Recommendation]:
    """The recommendation of each account's facts, quoting its model reasons if given."""
    ctx = Context.of(policy)
    if model_reasons is None:
        return (decide(f, ctx) for f in facts)
    return (decide(f, ctx, reasons) for f, reasons in zip(facts, model_reasons, strict=True))


def recommend(
    rows: pd.DataFrame, policy: Policy, model_reasons: list[list[dict]] | None = None
) -> list[Recommendation]:
    """One recommendation per snapshot row, in order (see ``iter_recommendations``)."""
    return list(iter_recommendations(rows, policy, model_reasons))


def recommend_records(
    records: Sequence[Mapping[str, Any]],
    policy: Policy,
    model_reasons: list[list[dict]] | None = None,
) -> list[Recommendation]:
    """``recommend`` on snapshot records (dicts) instead of a frame: the online path's, free of
    the fixed cost of pandas column operations (``serving.policy_records``)."""
    check_model_reasons(model_reasons, len(records))
    return list(_decisions(records_facts(records, policy), policy, model_reasons))


def forbidden_actions(row: Mapping[str, Any] | pd.Series, policy: Policy) -> dict[str, Block]:
    """Actions the policy forbids for one account (a snapshot row): action -> (rule_id, sentence).

    The write-off endpoint refuses a forbidden write-off with the rule's sentence. Columns the
    rules read but the caller does not have may be left out only for a credit balance.
    """
    (facts,) = account_facts(pd.DataFrame([dict(row)]), policy)
    return forbidden(facts, Context.of(policy))
