"""The batch's vectorized actions equal the per-row recommendations, row by row, on every rule."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from features.errors import ArscoreError
from features.schema import PAYER_TYPES
from features.snapshots import build_snapshots, snapshot_calendar
from serving.batch.scorer import PolicyActions
from serving.policy.config import Policy
from serving.policy.facts import OPTIONAL_POLICY_COLUMNS, FactColumns, Facts
from serving.policy.recommend import recommend
from serving.policy.rules import ACTIONS
from serving.policy.vector import recommend_actions
from tests.model_factory import small_history, small_model
from tests.serving.policy.factories import DEFAULT
from tests.serving.policy.factories import policy_with as _policy

NAN = float("nan")


NOT_501R = _policy(
    version="test-not-501r",
    facility_is_501r=False,
    cost_per_touch=12.0,
    touches_to_collect={"follow_up": 2, "payment_plan_offer": 4, "agency": 2},
    small_balance_threshold=60.0,
    appeal_window_days=90,
    fap_waiting_days=60,
    fap_application_days=200,
    carc={"correctable": ["50", "16"], "appealable": ["29", "97"], "final": ["15"]},
    state_default={"agency_referral_allowed_after_days": 45},
    states={
        "NY": {"no_collection_below_fpl_percent": 300, "agency_referral_allowed_after_days": 30}
    },
    medicare_bad_debt={
        "allowable_payer_types": ["medicare", "medicaid"],
        "min_statements": 5,
        "min_days_since_first_statement": 200,
    },
    collection_effort={"min_statements": 2, "min_days_since_first_statement": 90},
    routing={
        "min_expected_net_recovery": 10.0,
        "fap_screen_below_probability": 0.3,
        "agency_min_probability": 0.2,
        "agency_fee_percent": 40,
        "payment_plan": {
            "min_balance": 200.0,
            "min_probability": 0.1,
            "max_probability": 0.8,
            "kept_within_days": 30,
        },
    },
)
AGENCY_GATED_ONLY = _policy(
    version="test-agency-gated",
    eca_gated_actions=["agency"],
    fap_waiting_days=150,  # later than the collection effort: R501R-1 decides some rows
    state_default={"no_collection_below_fpl_percent": 150},
)
BAD_DEBT_GATED_ONLY = _policy(
    version="test-bad-debt-gated", eca_gated_actions=["bad_debt_write_off"], fap_waiting_days=150
)
POLICIES = (DEFAULT, NOT_501R, AGENCY_GATED_ONLY, BAD_DEBT_GATED_ONLY)


def _per_row(rows: pd.DataFrame, policy: Policy) -> np.ndarray:
    return np.asarray([r.action for r in recommend(rows, policy)], dtype=object)


def _around(*thresholds: float) -> list[float]:
    """Values just under, at and just over each threshold."""
    return [t + step for t in thresholds for step in (-1.0, -0.5, 0.0, 0.5, 1.0)]


def _draw(rng: np.random.Generator, n: int, values: Sequence[object]) -> list[object]:
    return [values[i] for i in rng.integers(len(values), size=n)]


def _boundaries(policy: Policy) -> dict[str, list[float]]:
    """Values of the numeric inputs on each side of every threshold the policy sets."""
    routing, plan = policy.routing, policy.routing.payment_plan
    states = [policy.state_default, *policy.states.values()]
    floors = [s.no_collection_below_fpl_percent or 200.0 for s in states]
    effort = (policy.collection_effort.min_statements, policy.medicare_bad_debt.min_statements)
    cuts = (routing.fap_screen_below_probability, routing.agency_min_probability)
    cuts += (plan.min_probability, plan.max_probability)
    touch, touches = policy.cost_per_touch, policy.touches_to_collect
    share = 1 - routing.agency_fee_percent / 100
    costs = [touch * touches.follow_up, touch * touches.payment_plan_offer]
    costs += [touch * touches.agency / share]  # the recovery at which an agency breaks even
    floor = routing.min_expected_net_recovery
    return {
        "open_balance": [-500.0, -0.006, -0.005, 0.0, 0.004, 0.006, 3.0, 120.0, 50_000.0]
        + _around(policy.small_balance_threshold, plan.min_balance),
        "days_since_last_denial": [NAN, 0.0, *_around(policy.appeal_window_days)],
        "days_since_last_payment": [NAN, NAN, 5.0, *_around(plan.kept_within_days)],
        "n_statements": [NAN, 2.5, *range(max(effort) + 2)],
        "days_since_first_statement": [NAN, 0.0, 400.0]
        + _around(
            policy.fap_waiting_days,
            policy.fap_application_days,
            policy.collection_effort.min_days_since_first_statement,
            policy.medicare_bad_debt.min_days_since_first_statement,
            *(s.agency_referral_allowed_after_days for s in states),
        ),
        "probability_collected": [NAN, 0.0, 0.3, 0.9, 1.0]
        + [c + step for c in cuts for step in (-0.001, 0.0, 0.001)],
        "fpl_percent": [NAN, NAN, 100.0, 250.0, *(f - 0.1 for f in floors), *floors],
        "expected_recovery": [NAN, 0.0, -5.0]
        + [c + floor + step for c in costs for step in (-0.01, 0.0, 0.01)],
    }


def adversarial_rows(policy: Policy, n: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """Every policy input drawn from values that reach each rule and sit on each boundary."""
    rng = np.random.default_rng(seed)
    carc, numbers = policy.carc, _boundaries(policy)
    codes = [*carc.correctable, *carc.appealable, *carc.final, *carc.contractual, "999", " 16 "]
    flag = [False] * 12 + [True, None]  # mostly closed, so that most rows reach rules 4-9
    drawn = {column: _draw(rng, n, values) for column, values in numbers.items()}
    rows = pd.DataFrame(
        {
            **drawn,
            "payer_balance": _draw(rng, n, [0.0, 250.0, NAN]),
            "responsibility": _draw(rng, n, ["payer", "patient", "patient", " payer ", None]),
            "payer_type": _draw(rng, n, [*PAYER_TYPES, None]),
            "patient_state": _draw(rng, n, [*policy.states, "TX", "CA", "nm", " co ", "", None]),
            "last_carc_group": _draw(rng, n, ["CO", "CO", "PR", "OA", None]),
            "last_carc_code": _draw(rng, n, [*codes, None]),
            "n_denials": _draw(rng, n, [0.0, 1.0, 1.0, 2.0, NAN]),
            "appeals_closed": _draw(rng, n, [0.0, 0.0, 1.0, 2.0, NAN]),
            "appeals_won": _draw(rng, n, [0.0, 0.0, 1.0, 2.0, NAN]),
            "appeal_open": _draw(rng, n, flag),
            "dispute_open": _draw(rng, n, flag),
            "fap_pending": _draw(rng, n, flag),
            "fap_applications": _draw(rng, n, [0.0, 0.0, 0.0, 1.0, NAN]),
            "fap_approved": _draw(rng, n, [0.0] * 8 + [1.0, NAN]),
            "payment_plans": _draw(rng, n, [0.0, 0.0, 1.0, NAN]),
            "fap_screened": _draw(rng, n, [True, False, None]),
            "presumptive_fap_eligible": _draw(rng, n, [False, False, True, None]),
            "patient_pr_code": _draw(rng, n, ["1", "2", "3", None]),
            "last_remit_carc_group": _draw(rng, n, ["CO", "PR", None, None]),
            "last_remit_carc_code": _draw(rng, n, [*carc.contractual, "16", None]),
        }
    )
    # most recoveries follow the probability, the rest sit on the net-recovery boundaries
    scaled = rows["probability_collected"] * rows["open_balance"].clip(lower=0)
    return rows.assign(
        expected_recovery=scaled.where(rng.random(n) < 0.6, rows["expected_recovery"])
    )


@pytest.fixture(scope="module")
def snapshot_rows() -> pd.DataFrame:
    """Month-end snapshots of the small synthetic history, scored by the small model."""
    history = small_history()
    calendar = snapshot_calendar(
        history.claims["billed_date"].min(), history.transactions["date"].max()
    )
    rows = build_snapshots(history, calendar[-6:], labels=None)
    model = small_model()
    X = model.features(rows)
    return rows.assign(
        probability_collected=model.probability(X),
        expected_recovery=model.expected_recovery(rows, X),
    )


def test_fact_columns_mirror_facts_field_for_field():
    assert FactColumns._fields == Facts._fields


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.version)
def test_recommend_actions_snapshot_rows_equal_recommend(snapshot_rows, policy):
    assert len(snapshot_rows) > 1_000
    np.testing.assert_array_equal(
        recommend_actions(snapshot_rows, policy), _per_row(snapshot_rows, policy)
    )


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.version)
@pytest.mark.parametrize("optional", ["with_optional", "without_optional"])
def test_recommend_actions_adversarial_rows_equal_recommend(policy, optional):
    rows = adversarial_rows(policy)
    if optional == "without_optional":
        rows = rows.drop(columns=list(OPTIONAL_POLICY_COLUMNS))
    actions = recommend_actions(rows, policy)
    assert actions.dtype == object and len(actions) == len(rows)
    np.testing.assert_array_equal(actions, _per_row(rows, policy))


def test_recommend_actions_nullable_dtypes_equal_recommend():
    rows = adversarial_rows(DEFAULT, seed=1).convert_dtypes()
    assert rows["dispute_open"].dtype == "boolean" and rows["n_denials"].dtype == "Int64"
    np.testing.assert_array_equal(recommend_actions(rows, DEFAULT), _per_row(rows, DEFAULT))


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.version)
def test_adversarial_rows_every_action_produced(policy):
    assert set(recommend_actions(adversarial_rows(policy), policy)) == set(ACTIONS)


def test_adversarial_rows_every_deciding_rule_reached():
    rule_ids = {
        reason["rule_id"]
        for policy in POLICIES
        for recommendation in recommend(adversarial_rows(policy), policy)
        for reason in recommendation.reasons
        if reason["source"] == "rule"
    }
    expected = {
        *("CREDIT-1", "ZERO-1", "CONTRACT-1", "HOLD-DISPUTE", "HOLD-APPEAL", "HOLD-FAP", "FAP-1"),
        *("DEN-1", "DEN-2", "DEN-3", "DEN-4", "DEN-5", "DEN-6", "DEN-W"),
        *("STATE-NM-FPL", "FPL-CHARITY", "PAYER-1", "MODEL-0", "SMALL-1", "FAP-SCREEN-1"),
        *("CYCLE-1", "BD-1", "PLAN-1", "R501R-1", "R501R-2", "R501R-3", "MCR-BD-1"),
        *("STATE-CO-AGENCY", "STATE-MD-AGENCY", "STATE-NY-INTEREST", "STATE-CO-CREDIT"),
    }
    assert expected <= rule_ids, sorted(expected - rule_ids)


def test_recommend_actions_empty_frame_empty_array():
    actions = recommend_actions(adversarial_rows(DEFAULT).iloc[:0], DEFAULT)
    assert actions.shape == (0,)


def test_recommend_actions_missing_column_error_names_it():
    rows = adversarial_rows(DEFAULT, n=10).drop(columns="fap_pending")
    with pytest.raises(ArscoreError, match="missing column.*fap_pending"):
        recommend_actions(rows, DEFAULT)


def test_recommend_actions_empty_open_balance_error_names_row():
    rows = adversarial_rows(DEFAULT, n=3)
    rows.loc[1, "open_balance"] = NAN
    with pytest.raises(ArscoreError, match=r"'open_balance' is empty in row\(s\) 2"):
        recommend_actions(rows, DEFAULT)


def test_policy_actions_with_model_reasons_equal_recommend(snapshot_rows):
    rows = snapshot_rows.iloc[:300]
    reasons = [["balance is 200 days old"]] * len(rows)
    model_reasons = [[{"sentence": text} for text in row] for row in reasons]
    expected = [r.action for r in recommend(rows, DEFAULT, model_reasons)]
    assert PolicyActions(DEFAULT)(rows, reasons) == (expected, DEFAULT.version)
    assert PolicyActions(DEFAULT)(rows, None) == (expected, DEFAULT.version)


def test_policy_actions_reasons_length_mismatch_rejected(snapshot_rows):
    with pytest.raises(ArscoreError, match="1 lists of model reasons for 2 rows"):
        PolicyActions(DEFAULT)(snapshot_rows.iloc[:2], [["a reason"]])
