"""The policy's configuration: the ``Policy`` model and its YAML loading, validated on load.

The packaged default is ``serving/policy/default.yaml``; ``ARSCORE_POLICY_FILE`` names another.
Every other policy module imports this one; it imports none of them.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from features.errors import ArscoreError
from features.schema import PAYER_TYPES

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
        resource = importlib.resources.files("serving.policy").joinpath(DEFAULT_POLICY)
        return parse_policy(resource.read_text(encoding="utf-8"), f"packaged {DEFAULT_POLICY}")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ArscoreError(f"{path}: cannot read the policy file ({error.strerror})") from None
    return parse_policy(text, str(path))


def stamped_policy_version(
    policy: Policy, risk_band_cuts: Sequence[float], reasons_per_score: int
) -> str:
    """The version stamped on a score's audit record, a worklist row and an action: the policy
    file's own ``version`` (what a ``Recommendation`` carries) and a hash of what else shapes a
    score's output, the band cut points and the number of reasons: ``2025.1+cfg-0123456789ab``."""
    config = {"risk_band_cuts": list(risk_band_cuts), "reasons_per_score": reasons_per_score}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode("utf-8")).hexdigest()
    return f"{policy.version}+cfg-{digest[:12]}"
