"""The decision policy: loading, each rule on a hand-built account, precedence, the gates."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from features.errors import ArscoreError
from features.snapshots import build_snapshots
from serving.policy.config import Policy, load_policy
from serving.policy.decide import Recommendation
from serving.policy.recommend import forbidden_actions, recommend
from serving.policy.rules import ACTIONS
from tests.factories import claim_row, make_history, tx_row
from tests.serving.policy.factories import DEFAULT
from tests.serving.policy.factories import policy_with as _policy

NAN = float("nan")


def _row(**overrides: object) -> dict[str, object]:
    """A self-pay patient balance after a full collection cycle, screened for FAP, scored."""
    row: dict[str, object] = {
        "claim_id": "C1",
        "payer_type": "self_pay",
        "patient_state": "TX",
        "open_balance": 400.0,
        "patient_balance": 400.0,
        "payer_balance": 0.0,
        "responsibility": "patient",
        "last_carc_group": None,
        "last_carc_code": None,
        "n_denials": 0,
        "days_since_last_denial": NAN,
        "days_since_last_payment": NAN,
        "appeals_closed": 0,
        "appeals_won": 0,
        "appeal_open": False,
        "dispute_open": False,
        "fap_pending": False,
        "fap_applications": 0,
        "fap_approved": 0,
        "fap_screened": True,
        "n_statements": 4,
        "days_since_first_statement": 150.0,
        "payment_plans": 0,
        "probability_collected": 0.30,
        "expected_recovery": 120.0,
    }
    row.update(overrides)
    return row


def _payer_denial(code: str, days: float, group: str = "CO", **overrides: object) -> dict:
    """A commercial claim still with the payer, denied ``days`` ago with group-code."""
    fields = {
        "payer_type": "commercial",
        "open_balance": 800.0,
        "patient_balance": 0.0,
        "payer_balance": 800.0,
        "responsibility": "payer",
        "last_carc_group": group,
        "last_carc_code": code,
        "n_denials": 1,
        "days_since_last_denial": days,
        "expected_recovery": 400.0,
    }
    return _row(**{**fields, **overrides})


def _one(policy: Policy = DEFAULT, **overrides: object) -> Recommendation:
    (recommendation,) = recommend(pd.DataFrame([_row(**overrides)]), policy)
    return recommendation


def _of(row: dict, policy: Policy = DEFAULT) -> Recommendation:
    (recommendation,) = recommend(pd.DataFrame([row]), policy)
    return recommendation


def _rule_ids(recommendation: Recommendation) -> list[str]:
    return [reason["rule_id"] for reason in recommendation.reasons]


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


# ---------------------------------------------------------------- loading


def test_load_policy_default_has_version_and_rules():
    assert DEFAULT.version == "2026-11-01.1"
    assert "16" in DEFAULT.carc.correctable
    assert DEFAULT.states["NM"].no_collection_below_fpl_percent == 200
    assert DEFAULT.states["CO"].credit_reporting_allowed is False


def test_load_policy_missing_field_names_file_and_field(tmp_path):
    data = DEFAULT.model_dump(mode="json")
    del data["cost_per_touch"]
    path = _write(tmp_path, data)
    with pytest.raises(ArscoreError, match="cost_per_touch") as raised:
        load_policy(path)
    assert str(path) in str(raised.value)


def test_load_policy_bad_nested_value_names_field_path(tmp_path):
    data = DEFAULT.model_dump(mode="json")
    data["states"]["NM"]["no_collection_below_fpl_percent"] = -5
    with pytest.raises(ArscoreError, match=r"states\.NM\.no_collection_below_fpl_percent"):
        load_policy(_write(tmp_path, data))


def test_load_policy_unknown_field_rejected(tmp_path):
    data = DEFAULT.model_dump(mode="json")
    data["routing"]["agency_fee"] = 30
    with pytest.raises(ArscoreError, match=r"routing\.agency_fee"):
        load_policy(_write(tmp_path, data))


def test_load_policy_medicare_advantage_allowable_rejected(tmp_path):
    data = DEFAULT.model_dump(mode="json")
    data["medicare_bad_debt"]["allowable_payer_types"] = ["medicare", "medicare_advantage"]
    with pytest.raises(ArscoreError, match="Medicare Advantage"):
        load_policy(_write(tmp_path, data))


def test_load_policy_code_in_two_carc_lists_rejected(tmp_path):
    data = DEFAULT.model_dump(mode="json")
    data["carc"]["final"] = [*data["carc"]["final"], 16]
    with pytest.raises(ArscoreError, match="CARC 16 is in both 'correctable' and 'final'"):
        load_policy(_write(tmp_path, data))


def test_load_policy_lowercase_state_rejected(tmp_path):
    data = DEFAULT.model_dump(mode="json")
    data["states"]["nm"] = data["states"].pop("NM")
    with pytest.raises(ArscoreError, match=r"states\.nm"):
        load_policy(_write(tmp_path, data))


def test_load_policy_invalid_yaml_names_line(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text('version: "1"\ncost_per_touch: [7.5\n', encoding="utf-8")
    with pytest.raises(ArscoreError, match="not valid YAML at line"):
        load_policy(path)


def test_load_policy_missing_file_names_path(tmp_path):
    with pytest.raises(ArscoreError, match="cannot read the policy file"):
        load_policy(tmp_path / "absent.yaml")


def test_team_filter_insurance_team_matches_payer_side_only():
    team = DEFAULT.teams["insurance_follow_up"]
    assert team.matches("commercial", "payer")
    assert not team.matches("commercial", "patient")


# ---------------------------------------------------------------- rules 1-8


def test_recommend_credit_balance_refund_review_and_no_write_off():
    recommendation = _one(open_balance=-40.0, patient_balance=0.0)
    assert recommendation.action == "refund_review"
    assert recommendation.blocked_actions["bad_debt_write_off"][0] == "CREDIT-1"
    assert "$40.00" in recommendation.reasons[0]["sentence"]


def test_recommend_credit_balance_with_dispute_refund_review():
    assert _one(open_balance=-40.0, dispute_open=True).action == "refund_review"


def test_recommend_zero_balance_hold():
    assert _rule_ids(_one(open_balance=0.0, patient_balance=0.0)) == ["ZERO-1"]


def test_recommend_contractual_carc_on_payer_balance_contractual_adjustment():
    recommendation = _of(_payer_denial("45", 10))
    assert recommendation.action == "contractual_adjustment"
    assert recommendation.blocked_actions["bad_debt_write_off"][0] == "CONTRACT-1"
    assert recommendation.expected_net_recovery is None


def test_recommend_contractual_with_open_dispute_contractual_adjustment():
    assert _of(_payer_denial("45", 10, dispute_open=True)).action == "contractual_adjustment"


def test_recommend_contractual_code_in_pr_group_not_contractual():
    assert _of(_payer_denial("45", 10, group="PR")).action != "contractual_adjustment"


def test_recommend_last_remit_carc_when_present_decides_contractual():
    row = _payer_denial("16", 10, last_remit_carc_group="CO", last_remit_carc_code="45")
    assert _of(row).action == "contractual_adjustment"


def test_recommend_dispute_and_small_balance_hold():
    recommendation = _one(open_balance=10.0, patient_balance=10.0, dispute_open=True)
    assert recommendation.action == "hold"
    assert recommendation.blocked_actions["small_balance_write_off"][0] == "HOLD-DISPUTE"
    assert "No Surprises Act" in recommendation.reasons[0]["sentence"]


@pytest.mark.parametrize(
    ("flag", "rule_id"), [("appeal_open", "HOLD-APPEAL"), ("fap_pending", "HOLD-FAP")]
)
def test_recommend_open_appeal_or_fap_application_hold(flag, rule_id):
    recommendation = _one(**{flag: True})
    assert (recommendation.action, _rule_ids(recommendation)) == ("hold", [rule_id])
    assert recommendation.blocked_actions["agency"][0] == rule_id


def test_recommend_missing_dispute_flag_treated_as_open_hold():
    recommendation = _one(dispute_open=None)
    assert recommendation.action == "hold"
    assert "status missing" in recommendation.reasons[0]["sentence"]


def test_recommend_fap_approved_charity_write_off_never_bad_debt():
    recommendation = _one(fap_applications=1, fap_approved=1)
    assert recommendation.action == "charity_write_off"
    assert recommendation.blocked_actions["bad_debt_write_off"][0] == "FAP-1"


def test_recommend_fap_approved_with_dispute_hold():
    assert _one(fap_approved=1, dispute_open=True).action == "hold"


def test_recommend_correctable_denial_from_history_resubmit():
    history = make_history(
        [claim_row("C1")], [tx_row("C1", "2025-02-01", "denial", carc_group="CO", carc_code="16")]
    )
    rows = build_snapshots(history, [pd.Timestamp("2025-03-31")], labels=None)
    rows = rows.assign(probability_collected=0.6, expected_recovery=360.0)
    (recommendation,) = recommend(rows, DEFAULT)
    assert recommendation.action == "resubmit"
    assert recommendation.blocked_actions["denial_write_off"][0] == "DEN-1"
    assert recommendation.expected_net_recovery == pytest.approx(360.0 - 7.5 * 4)


@pytest.mark.parametrize(("days", "action"), [(180, "appeal"), (181, "denial_write_off")])
def test_recommend_appealable_denial_window_boundary(days, action):
    assert _of(_payer_denial("50", days)).action == action


def test_recommend_appealable_denial_inside_window_write_off_blocked():
    blocked = _of(_payer_denial("50", 30)).blocked_actions
    assert blocked["denial_write_off"][0] == "DEN-2"
    assert "150 days left" in blocked["denial_write_off"][1]


def test_recommend_final_denial_denial_write_off_not_bad_debt():
    recommendation = _of(_payer_denial("29", 5))
    assert recommendation.action == "denial_write_off"
    assert recommendation.blocked_actions["bad_debt_write_off"][0] == "PAYER-1"


def test_recommend_appeal_lost_denial_write_off():
    row = _payer_denial("50", 60, appeals_closed=1, appeals_won=0)
    assert _rule_ids(_of(row)) == ["DEN-5"]


def test_recommend_appeal_won_follow_up():
    row = _payer_denial("50", 60, appeals_closed=1, appeals_won=1)
    assert (_of(row).action, _rule_ids(_of(row))) == ("follow_up", ["DEN-W"])


def test_recommend_unclassified_denial_follow_up_not_written_off():
    recommendation = _of(_payer_denial("999", 400))
    assert recommendation.action == "follow_up"
    assert recommendation.blocked_actions["denial_write_off"][0] == "DEN-6"


def test_recommend_payment_after_denial_denial_not_current_follow_up():
    row = _payer_denial("29", 60, days_since_last_payment=20.0)
    assert _rule_ids(_of(row)) == ["PAYER-1"]


def test_recommend_payer_balance_follow_up_with_net_recovery():
    row = _row(responsibility="payer", payer_type="commercial", payer_balance=400.0)
    recommendation = _of(row)
    assert (recommendation.action, _rule_ids(recommendation)) == ("follow_up", ["PAYER-1"])
    assert recommendation.expected_net_recovery == pytest.approx(120.0 - 7.5 * 3)


def test_recommend_nm_presumptive_eligible_fap_screen_and_no_collection():
    recommendation = _one(patient_state="NM", presumptive_fap_eligible=True, fap_screened=False)
    assert recommendation.action == "fap_screen"
    assert recommendation.blocked_actions["agency"][0] == "STATE-NM-FPL"
    assert recommendation.blocked_actions["payment_plan_offer"][0] == "STATE-NM-FPL"


def test_recommend_nm_screened_under_floor_charity_write_off():
    recommendation = _one(patient_state="NM", fpl_percent=150.0)
    assert recommendation.action == "charity_write_off"
    assert "150% of the poverty level" in recommendation.reasons[0]["sentence"]


def test_recommend_nm_income_above_floor_collects_normally():
    assert _one(patient_state="NM", fpl_percent=250.0).action == "agency"


def test_recommend_tx_presumptive_eligible_no_state_floor():
    assert _one(patient_state="TX", presumptive_fap_eligible=True).action == "agency"


# ---------------------------------------------------------------- rule 9 and its gates


def test_recommend_patient_after_cycle_agency_with_model_reasons():
    reasons = [[{"feature": "days_since_service", "sentence": "balance is 200 days old"}]]
    (recommendation,) = recommend(pd.DataFrame([_row()]), DEFAULT, reasons)
    assert recommendation.action == "agency"
    assert recommendation.reasons[0] == {
        "source": "model",
        "rule_id": "days_since_service",
        "sentence": "balance is 200 days old",
    }
    assert recommendation.expected_net_recovery == pytest.approx(120.0 * 0.7 - 7.5)
    assert "ENR-1" in _rule_ids(recommendation)


def test_recommend_co_agency_without_credit_reporting():
    recommendation = _one(patient_state="CO", days_since_first_statement=200.0)
    assert recommendation.action == "agency"
    assert "STATE-CO-CREDIT" in _rule_ids(recommendation)
    assert "STATE-TX-CREDIT" not in _rule_ids(_one(patient_state="TX"))


def test_recommend_co_agency_before_state_waiting_days_follow_up():
    recommendation = _one(patient_state="CO", days_since_first_statement=150.0)
    assert recommendation.action == "follow_up"
    assert recommendation.blocked_actions["agency"][0] == "STATE-CO-AGENCY"
    assert "STATE-CO-AGENCY" in _rule_ids(recommendation)


@pytest.mark.parametrize(("days", "blocked"), [(119.0, True), (120.0, False)])
def test_forbidden_actions_501r_waiting_period_boundary(days, blocked):
    forbidden = forbidden_actions(_row(days_since_first_statement=days), DEFAULT)
    assert ("agency" in forbidden) is blocked
    if blocked:
        assert forbidden["agency"][0] == "R501R-1"
        assert "first statement 119 days ago" in forbidden["agency"][1]


def test_recommend_501r_day_119_follow_up_day_120_agency():
    policy = _policy(collection_effort={"min_days_since_first_statement": 60})
    day_119 = _one(policy, days_since_first_statement=119.0)
    assert day_119.action == "follow_up"
    assert "R501R-1" in _rule_ids(day_119)
    assert _one(policy, days_since_first_statement=120.0).action == "agency"


def test_recommend_501r_no_screen_fap_screen_before_agency():
    recommendation = _one(fap_screened=False, days_since_first_statement=200.0)
    assert recommendation.action == "fap_screen"
    assert recommendation.blocked_actions["agency"][0] == "R501R-2"


def test_recommend_fap_application_counts_as_screen():
    assert _one(fap_screened=False, fap_applications=1).action == "agency"


def test_recommend_not_501r_no_screen_agency():
    policy = _policy(facility_is_501r=False)
    assert _one(policy, fap_screened=False, days_since_first_statement=200.0).action == "agency"


def test_recommend_collection_cycle_not_done_follow_up():
    recommendation = _one(n_statements=2)
    assert recommendation.action == "follow_up"
    assert "CYCLE-1" in _rule_ids(recommendation)
    assert recommendation.blocked_actions["agency"][0] == "EFFORT-1"


def test_recommend_small_balance_not_worth_collecting_small_write_off():
    recommendation = _one(open_balance=12.0, patient_balance=12.0, expected_recovery=4.0)
    assert recommendation.action == "small_balance_write_off"
    assert recommendation.expected_net_recovery is None


def test_recommend_balance_at_threshold_not_small_write_off():
    recommendation = _one(open_balance=25.0, patient_balance=25.0, expected_recovery=4.0)
    assert recommendation.action != "small_balance_write_off"
    assert recommendation.blocked_actions["small_balance_write_off"][0] == "SMALL-0"


def test_recommend_low_probability_unscreened_fap_screen():
    recommendation = _one(probability_collected=0.05, expected_recovery=20.0, fap_screened=False)
    assert (recommendation.action, _rule_ids(recommendation)[-1]) == ("fap_screen", "FAP-SCREEN-1")


def test_recommend_large_moderate_balance_payment_plan_with_ny_cap():
    recommendation = _one(
        patient_state="NY", open_balance=1500.0, patient_balance=1500.0, expected_recovery=600.0
    )
    assert recommendation.action == "payment_plan_offer"
    assert "STATE-NY-INTEREST" in _rule_ids(recommendation)


def test_recommend_kept_payment_plan_no_agency():
    recommendation = _one(payment_plans=1, days_since_last_payment=20.0)
    assert recommendation.action == "follow_up"
    assert recommendation.blocked_actions["agency"][0] == "PLAN-1"


def test_recommend_no_score_follow_up():
    assert _rule_ids(_one(probability_collected=NAN, expected_recovery=NAN)) == ["MODEL-0"]


def _bad_debt_row(payer_type: str, **overrides: object) -> dict:
    """A patient balance after 250 days and 4 statements that no collection action would pay."""
    fields = {
        "payer_type": payer_type,
        "days_since_first_statement": 250.0,
        "probability_collected": 0.02,
        "expected_recovery": 8.0,
    }
    return _row(**{**fields, **overrides})


@pytest.mark.parametrize(
    ("pr_code", "claimable", "rule_id"),
    [("1", True, "MCR-BD-OK"), ("2", True, "MCR-BD-OK"), ("3", False, "MCR-BD-2")],
)
def test_recommend_medicare_bad_debt_claimable_only_for_deductible_coinsurance(
    pr_code, claimable, rule_id
):
    recommendation = _of(_bad_debt_row("medicare", patient_pr_code=pr_code))
    assert recommendation.action == "bad_debt_write_off"
    assert recommendation.medicare_bad_debt_claimable is claimable
    assert _rule_ids(recommendation)[-1] == rule_id


def test_recommend_medicare_advantage_ordinary_bad_debt_says_so():
    recommendation = _of(_bad_debt_row("medicare_advantage", patient_pr_code="1"))
    assert recommendation.action == "bad_debt_write_off"
    assert recommendation.medicare_bad_debt_claimable is False
    assert "MCR-BD-3" in _rule_ids(recommendation)


def test_recommend_medicare_unknown_pr_code_claimability_unknown():
    recommendation = _of(_bad_debt_row("medicare"))
    assert recommendation.medicare_bad_debt_claimable is None
    assert "MCR-BD-4" in _rule_ids(recommendation)


def test_recommend_medicare_effort_short_bad_debt_blocked():
    policy = _policy(medicare_bad_debt={"min_statements": 5})
    recommendation = _of(_bad_debt_row("medicare", patient_pr_code="1"), policy)
    assert recommendation.action == "follow_up"
    assert recommendation.blocked_actions["bad_debt_write_off"][0] == "MCR-BD-1"
    assert _of(_bad_debt_row("commercial"), policy).action == "bad_debt_write_off"


def test_recommend_bad_debt_inside_fap_application_period_follow_up():
    recommendation = _of(_bad_debt_row("self_pay", days_since_first_statement=200.0))
    assert recommendation.action == "follow_up"
    assert recommendation.blocked_actions["bad_debt_write_off"][0] == "R501R-3"


# ---------------------------------------------------------------- API contract


def test_recommend_keeps_row_order_and_policy_version():
    rows = pd.DataFrame([_row(open_balance=-5.0), _payer_denial("16", 3), _row()])
    recommendations = recommend(rows, DEFAULT)
    assert [r.action for r in recommendations] == ["refund_review", "resubmit", "agency"]
    assert {r.policy_version for r in recommendations} == {DEFAULT.version}


def test_recommend_missing_column_error_names_it():
    with pytest.raises(ArscoreError, match="dispute_open"):
        recommend(pd.DataFrame([_row()]).drop(columns="dispute_open"), DEFAULT)


def test_recommend_model_reasons_length_mismatch_rejected():
    with pytest.raises(ArscoreError, match="1 lists of model reasons for 2 rows"):
        recommend(pd.DataFrame([_row(), _row()]), DEFAULT, [[]])


def test_recommend_model_reason_without_sentence_rejected():
    with pytest.raises(ArscoreError, match="sentence"):
        recommend(pd.DataFrame([_row()]), DEFAULT, [[{"feature": "age"}]])


def test_forbidden_actions_series_row_matches_recommendation():
    row = _row(days_since_first_statement=100.0, fap_screened=False)
    (recommendation,) = recommend(pd.DataFrame([row]), DEFAULT)
    assert forbidden_actions(pd.Series(row), DEFAULT) == recommendation.blocked_actions


def test_recommend_never_recommends_a_forbidden_action():
    grid = itertools.product(
        [-20.0, 10.0, 400.0, 2000.0],  # open balance
        ["payer", "patient"],
        [None, "16", "50", "29", "45"],  # last denial CARC
        [False, True],  # dispute open
        [0, 1],  # FAP approved
        ["TX", "NM", "CO"],
        [0.02, 0.4],  # probability
        [60.0, 130.0, 300.0],  # days since first statement
    )
    rows = []
    for balance, side, code, dispute, approved, state, p, days in grid:
        payer = balance if side == "payer" else 0.0
        rows.append(
            _row(
                open_balance=balance,
                patient_balance=balance - payer,
                payer_balance=payer,
                responsibility=side,
                payer_type="commercial",
                last_carc_group=None if code is None else "CO",
                last_carc_code=code,
                n_denials=int(code is not None),
                days_since_last_denial=NAN if code is None else days,
                dispute_open=dispute,
                fap_approved=approved,
                patient_state=state,
                presumptive_fap_eligible=state == "NM",
                probability_collected=p,
                expected_recovery=p * max(balance, 0.0),
                days_since_first_statement=days,
            )
        )
    recommendations = recommend(pd.DataFrame(rows), DEFAULT)
    assert {r.action for r in recommendations} <= set(ACTIONS)
    assert all(r.action not in r.blocked_actions for r in recommendations)
    assert all(r.reasons for r in recommendations)
    assert len({r.action for r in recommendations}) >= 9
    assert np.isfinite([r.expected_net_recovery or 0.0 for r in recommendations]).all()


def test_recommend_empty_open_balance_error_names_row():
    rows = pd.DataFrame([_row(), _row(open_balance=NAN)])
    with pytest.raises(ArscoreError, match=r"'open_balance' is empty in row\(s\) 2"):
        recommend(rows, DEFAULT)


def test_forbidden_actions_snapshot_series_blocks_early_agency():
    history = make_history(
        [claim_row("C1", payer_type="self_pay", payer_id="SELF", expected_amount=None)],
        [tx_row("C1", "2025-01-06", "statement")],
    )
    snapshot = build_snapshots(history, [pd.Timestamp("2025-03-31")], labels=None).iloc[0]
    scored = pd.concat(
        [snapshot, pd.Series({"probability_collected": 0.1, "expected_recovery": 9})]
    )
    forbidden = forbidden_actions(scored, DEFAULT)
    assert forbidden["agency"][0] == "R501R-1"
    assert "first statement 84 days ago" in forbidden["agency"][1]
    assert forbidden["denial_write_off"][0] == "DEN-0"
