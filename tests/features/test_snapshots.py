"""Snapshots and labels: point-in-time state, label arithmetic, censoring and leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.snapshots import LabelConfig, aging_bucket, build_snapshots
from tests.factories import claim_row, make_history, tx_row

DATA_END = pd.Timestamp("2025-12-31")


def _insured_history(extra: list[dict] | None = None):
    """C1: $1,000 charge, $600 expected; paid $500 by payer, $400 contractual, $100 to patient."""
    transactions = [
        tx_row("C1", "2025-02-10", "payment", 500, party="payer"),
        tx_row(
            "C1",
            "2025-02-10",
            "adjustment",
            400,
            reason="contractual",
            carc_group="CO",
            carc_code="45",
        ),
        tx_row(
            "C1", "2025-02-10", "transfer", 100, party="patient", carc_group="PR", carc_code="1"
        ),
        tx_row("C1", "2025-03-01", "statement"),
        tx_row("C1", "2025-04-20", "payment", 60, party="patient"),
    ]
    return make_history([claim_row("C1")], transactions + (extra or []))


def _one(snapshots: pd.DataFrame, claim_id: str, as_of: str) -> pd.Series:
    rows = snapshots[(snapshots["claim_id"] == claim_id) & (snapshots["as_of"] == as_of)]
    assert len(rows) == 1, f"expected one snapshot of {claim_id} at {as_of}"
    return rows.iloc[0]


def test_build_snapshots_before_adjudication_collectible_is_expected_amount():
    snaps = build_snapshots(_insured_history(), [pd.Timestamp("2025-01-31")], data_end=DATA_END)
    row = _one(snaps, "C1", "2025-01-31")
    assert row["open_balance"] == 1000.0
    assert row["collectible_balance"] == 600.0
    assert row["responsibility"] == "payer"
    assert row["recovered_amount"] == 560.0
    assert row["recovered_fraction"] == pytest.approx(560 / 600)
    assert bool(row["collected"]) is True


def test_build_snapshots_after_adjudication_collectible_is_open_balance():
    snaps = build_snapshots(_insured_history(), [pd.Timestamp("2025-02-28")], data_end=DATA_END)
    row = _one(snaps, "C1", "2025-02-28")
    assert row["open_balance"] == 100.0
    assert row["patient_balance"] == 100.0
    assert row["collectible_balance"] == 100.0
    assert row["contractual_adjusted"] == 400.0
    assert row["responsibility"] == "patient"
    assert row["recovered_amount"] == 60.0
    assert row["recovered_fraction"] == pytest.approx(0.6)


def test_build_snapshots_contractual_adjustment_is_never_recovery():
    snaps = build_snapshots(_insured_history(), [pd.Timestamp("2025-01-31")], data_end=DATA_END)
    assert _one(snaps, "C1", "2025-01-31")["recovered_amount"] == 560.0  # 500 + 60, not + 400


def test_build_snapshots_threshold_decides_collected():
    history = _insured_history()
    strict = build_snapshots(
        history, [pd.Timestamp("2025-02-28")], LabelConfig(90, 0.7), data_end=DATA_END
    )
    assert bool(_one(strict, "C1", "2025-02-28")["collected"]) is False


def test_build_snapshots_payment_on_horizon_day_counts_day_after_does_not():
    history = make_history(
        [claim_row("C1", payer_type="self_pay", payer_id="SELF", expected_amount="")],
        [tx_row("C1", "2025-04-30", "payment", 100, party="patient")],
    )
    inside = build_snapshots(history, [pd.Timestamp("2025-01-30")], data_end=DATA_END)
    outside = build_snapshots(history, [pd.Timestamp("2025-01-29")], data_end=DATA_END)
    assert _one(inside, "C1", "2025-01-30")["recovered_amount"] == 100.0  # Jan 30 + 90 = Apr 30
    assert _one(outside, "C1", "2025-01-29")["recovered_amount"] == 0.0


def test_build_snapshots_horizon_past_data_end_is_censored_not_negative():
    snaps = build_snapshots(
        _insured_history(), [pd.Timestamp("2025-02-28")], data_end=pd.Timestamp("2025-05-01")
    )
    row = _one(snaps, "C1", "2025-02-28")
    assert bool(row["censored"]) is True
    assert pd.isna(row["collected"]) and np.isnan(row["recovered_amount"])
    assert row["open_balance"] == 100.0  # features are still there for scoring


def test_build_snapshots_closed_balance_has_no_snapshot():
    history = _insured_history([tx_row("C1", "2025-05-10", "payment", 40, party="patient")])
    snaps = build_snapshots(history, [pd.Timestamp("2025-05-31")], data_end=DATA_END)
    assert snaps.empty or "C1" not in set(snaps["claim_id"])


def test_build_snapshots_claim_not_yet_billed_has_no_snapshot():
    snaps = build_snapshots(_insured_history(), [pd.Timestamp("2025-01-04")], data_end=DATA_END)
    assert len(snaps) == 0


def test_build_snapshots_refund_raises_balance():
    history = make_history(
        [claim_row("C1", payer_type="self_pay", payer_id="SELF", expected_amount="")],
        [
            tx_row("C1", "2025-02-01", "payment", 1000, party="patient"),
            tx_row("C1", "2025-03-01", "refund", 250),
        ],
    )
    snaps = build_snapshots(history, [pd.Timestamp("2025-03-31")], data_end=DATA_END)
    assert _one(snaps, "C1", "2025-03-31")["open_balance"] == 250.0


def test_build_snapshots_open_states_follow_events():
    extra = [
        tx_row("C1", "2025-03-05", "dispute_open"),
        tx_row("C1", "2025-03-06", "fap_application"),
        tx_row("C1", "2025-03-20", "fap_decision", reason="denied"),
    ]
    snaps = build_snapshots(
        _insured_history(extra),
        [pd.Timestamp("2025-03-10"), pd.Timestamp("2025-03-31")],
        data_end=DATA_END,
    )
    early, late = _one(snaps, "C1", "2025-03-10"), _one(snaps, "C1", "2025-03-31")
    assert early["dispute_open"] and early["fap_pending"]
    assert late["dispute_open"] and not late["fap_pending"]
    assert early["days_since_first_statement"] == 9.0


def test_build_snapshots_denial_code_and_count():
    history = make_history(
        [claim_row("C1")],
        [
            tx_row("C1", "2025-02-01", "denial", carc_group="CO", carc_code="16", rarc_code="N290"),
            tx_row("C1", "2025-03-01", "denial", carc_group="CO", carc_code="50"),
        ],
    )
    snaps = build_snapshots(
        history, [pd.Timestamp("2025-02-15"), pd.Timestamp("2025-03-15")], data_end=DATA_END
    )
    assert _one(snaps, "C1", "2025-02-15")["last_carc_code"] == "16"
    late = _one(snaps, "C1", "2025-03-15")
    assert late["last_carc_code"] == "50" and late["n_denials"] == 2.0
    assert late["adjudicated"]


def test_aging_bucket_edges():
    days = pd.Series([0.0, 30.0, 31.0, 60.0, 61.0, 90.0, 91.0, 120.0, 121.0])
    expected = ["0-30", "0-30", "31-60", "31-60", "61-90", "61-90", "91-120", "91-120", "120+"]
    assert aging_bucket(days).tolist() == expected


def _patient_history(later_c2: list[dict]):
    """Patient P1: C2 (self-pay, $300, older) paid in full; C1 scored. Plus C2's later events."""
    claims = [
        claim_row("C1"),
        claim_row(
            "C2",
            service_date="2024-10-01",
            billed_date="2024-10-03",
            payer_type="self_pay",
            payer_id="SELF",
            expected_amount="",
            total_charge="300",
        ),
        claim_row("C3", patient_id="P2", service_date="2024-10-01", billed_date="2024-10-03"),
    ]
    transactions = [
        tx_row("C2", "2024-11-01", "statement"),
        tx_row("C2", "2024-12-15", "payment", 150, party="patient"),
        tx_row("C3", "2024-12-20", "payment", 999, party="patient"),
    ]
    return make_history(claims, transactions + later_c2)


def test_build_snapshots_patient_history_counts_other_claims_only():
    snaps = build_snapshots(_patient_history([]), [pd.Timestamp("2025-01-31")], data_end=DATA_END)
    row = _one(snaps, "C1", "2025-01-31")
    assert row["patient_prior_claims"] == 1.0
    assert row["patient_prior_share_paid"] == pytest.approx(0.5)
    assert row["patient_prior_patient_balance"] == 300.0
    assert row["patient_days_since_last_payment"] == 47.0  # Dec 15 to Jan 31, P2's payment unseen


def test_build_snapshots_other_claims_later_events_are_invisible():
    later = [
        tx_row("C2", "2025-02-01", "payment", 150, party="patient"),
        tx_row("C2", "2025-02-02", "adjustment", 1, reason="bad_debt"),
    ]
    as_of = [pd.Timestamp("2025-01-31")]
    before = build_snapshots(_patient_history([]), as_of, data_end=DATA_END)
    after = build_snapshots(_patient_history(later), as_of, data_end=DATA_END)
    cols = [c for c in before.columns if c.startswith("patient_")]
    pd.testing.assert_frame_equal(before[cols], after[cols])


def test_build_snapshots_money_is_exact_to_the_cent():
    """Money is summed in integer cents: no float residue (100.10 - 50.05 - 50.04 is 0.01, not
    0.00999999999999801), so a client rounding to cents sees the values the model saw."""
    claims = [claim_row("C1", total_charge="100.10", expected_amount=None)]
    transactions = [
        tx_row("C1", "2025-02-10", "payment", "50.05", party="payer"),
        tx_row("C1", "2025-02-11", "payment", "50.04", party="payer"),
    ]
    snapshots = build_snapshots(make_history(claims, transactions), [pd.Timestamp("2025-03-01")])
    row = _one(snapshots, "C1", "2025-03-01")
    assert row["paid_to_date"] == 100.09
    assert row["open_balance"] == row["payer_balance"] == row["collectible_balance"] == 0.01
    assert row["patient_balance"] == 0.0


def test_build_snapshots_every_money_value_is_whole_cents():
    from features.history import validate_history
    from features.snapshots import MONEY_COLUMNS
    from tests.factories import TEST_KEY
    from training.synthetic import GeneratorConfig, generate_history

    claims, transactions = generate_history(GeneratorConfig(n_claims=3000, seed=5, months=10))
    history = validate_history(claims, transactions, TEST_KEY)
    end = history.transactions["date"].max()
    snapshots = build_snapshots(history, [end - pd.Timedelta(days=d) for d in (120, 60, 0)])
    assert len(snapshots) > 1000
    for name in MONEY_COLUMNS:
        values = snapshots[name].to_numpy(dtype="float64", na_value=np.nan)
        values = values[~np.isnan(values)]
        assert len(values) > 0, name
        np.testing.assert_array_equal(np.round(values * 100) / 100, values, err_msg=name)
