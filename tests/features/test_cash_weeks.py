"""Forecast weeks and the cash each open balance brought in each week after an as-of date."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.cash_forecast import group_sums, parse_breakdown
from features.cash_weeks import week_bounds, week_of, weekly_cash_cents
from features.errors import ArscoreError
from tests.factories import claim_row, make_history, tx_row

AS_OF = pd.Timestamp("2025-03-31")


def test_week_of_day_boundaries_fall_in_the_documented_weeks():
    assert week_of(np.array([1, 7, 8, 14, 15, 91])).tolist() == [1, 1, 2, 2, 3, 13]


def test_week_bounds_week_one_starts_the_day_after_as_of():
    bounds = week_bounds(AS_OF, 13)
    assert bounds["week_start"].iloc[0] == pd.Timestamp("2025-04-01")
    assert bounds["week_end"].iloc[0] == pd.Timestamp("2025-04-07")
    assert bounds["week_end"].iloc[12] == AS_OF + pd.Timedelta(days=91)


def test_weekly_cash_cents_counts_payments_by_week_and_side_only_inside_the_horizon():
    history = make_history(
        [claim_row("C1")],
        [
            tx_row("C1", "2025-03-31", "payment", "10.00", party="payer"),  # on as-of: known
            tx_row("C1", "2025-04-01", "payment", "100.10", party="payer"),  # week 1
            tx_row("C1", "2025-04-07", "payment", "0.05", party="patient"),  # week 1
            tx_row("C1", "2025-04-08", "payment", "20.00", party="patient"),  # week 2
            tx_row("C1", "2025-04-09", "refund", "5.00", party="payer"),  # not cash in
            tx_row("C1", "2025-06-30", "payment", "30.00", party="payer"),  # day 91: week 13
            tx_row("C1", "2025-07-01", "payment", "40.00", party="payer"),  # day 92: outside
        ],
    )
    accounts = pd.DataFrame({"claim_id": ["C1"], "as_of": [AS_OF]})
    cash = weekly_cash_cents(accounts, history.transactions, 13)
    assert cash.shape == (1, 13, 2)
    assert cash[0, 0].tolist() == [10010, 5]
    assert cash[0, 1].tolist() == [0, 2000]
    assert cash[0, 12].tolist() == [3000, 0]
    assert cash.sum() == 10010 + 5 + 2000 + 3000


def test_group_sums_by_payer_type_and_side_add_up_to_the_total():
    rng = np.random.default_rng(3)
    snapshots = pd.DataFrame({"payer_type": rng.choice(["commercial", "medicaid"], 40)})
    cash = rng.random((40, 13, 2))
    total = group_sums(snapshots, {"x": cash}, ())
    both = group_sums(snapshots, {"x": cash}, ("payer_type", "responsibility"))
    assert len(both) == 2 * 2 * 13
    by_week = both.groupby("week")["x"].sum().to_numpy()
    np.testing.assert_allclose(by_week, total["x"].to_numpy())
    medicaid_patient = both[
        (both["payer_type"] == "medicaid") & (both["responsibility"] == "patient")
    ]
    mask = snapshots["payer_type"].to_numpy() == "medicaid"
    np.testing.assert_allclose(medicaid_patient["x"].to_numpy(), cash[mask, :, 1].sum(axis=0))


def test_parse_breakdown_unknown_column_is_refused_with_the_allowed_names():
    assert parse_breakdown("responsibility,payer_type") == ("payer_type", "responsibility")
    with pytest.raises(ArscoreError, match="payer_type, responsibility"):
        parse_breakdown("payer_type,zip3")
