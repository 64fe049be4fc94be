"""The time split: boundaries by as-of date, censored rows dropped, no label crossing a split."""

from __future__ import annotations

import pandas as pd
import pytest

from features.errors import ArscoreError
from training.split import derive_cutoffs, time_split

HORIZON = 90


def monthly_snapshots(first: str = "2025-01-31", months: int = 18, censored_last: int = 3):
    """Two claims per month-end as-of date; the last ``censored_last`` dates are censored."""
    dates = pd.date_range(first, periods=months, freq="ME")
    rows = []
    for position, as_of in enumerate(dates):
        censored = position >= months - censored_last
        for claim in ("A", "B"):
            collected = pd.NA if censored else claim == "A"
            rows.append(
                {"claim_id": claim, "as_of": as_of, "censored": censored, "collected": collected}
            )
    frame = pd.DataFrame(rows)
    frame["collected"] = frame["collected"].astype("boolean")
    return frame


def test_time_split_rows_by_as_of_boundaries_each_split_in_its_window():
    split = time_split(monthly_snapshots(), HORIZON, "2025-06-30", "2025-12-31")
    assert split.train["as_of"].max() <= pd.Timestamp("2025-06-30")
    assert split.validation["as_of"].min() > pd.Timestamp("2025-06-30")
    assert split.validation["as_of"].max() <= pd.Timestamp("2025-12-31")
    assert split.test["as_of"].min() > pd.Timestamp("2025-12-31")


def test_time_split_label_window_reaching_next_split_is_dropped():
    split = time_split(monthly_snapshots(), HORIZON, "2025-06-30", "2025-12-31")
    horizon = pd.Timedelta(days=HORIZON)
    assert split.train["as_of"].max() + horizon <= split.validation["as_of"].min()
    assert split.validation["as_of"].max() + horizon <= split.test["as_of"].min()
    # 2025-05-31 + 90 days = 2025-08-29, after validation starts (2025-07-31): dropped
    assert pd.Timestamp("2025-05-31") not in set(split.train["as_of"])
    assert pd.Timestamp("2025-04-30") in set(split.train["as_of"])


def test_time_split_censored_rows_are_in_no_split():
    snapshots = monthly_snapshots()
    split = time_split(snapshots, HORIZON, "2025-06-30", "2025-12-31")
    used = pd.concat([split.train, split.validation, split.test])
    assert not used["censored"].any()
    assert used["collected"].notna().all()
    assert split.test["as_of"].max() == snapshots.loc[~snapshots["censored"], "as_of"].max()


def test_derive_cutoffs_default_last_three_uncensored_dates_are_test():
    snapshots = monthly_snapshots()
    split = time_split(snapshots, HORIZON)
    uncensored = sorted(snapshots.loc[~snapshots["censored"], "as_of"].unique())
    assert sorted(split.test["as_of"].unique()) == uncensored[-3:]
    assert split.validation["as_of"].nunique() == 3
    assert split.cutoffs == derive_cutoffs(snapshots, HORIZON)


def test_time_split_validation_too_short_for_horizon_raises_with_cutoffs_named():
    with pytest.raises(ArscoreError, match="validation split is empty.*valid_end 2025-08-31"):
        time_split(monthly_snapshots(), HORIZON, "2025-06-30", "2025-08-31")


def test_derive_cutoffs_history_shorter_than_horizon_raises():
    with pytest.raises(ArscoreError, match="too (short|few)"):
        derive_cutoffs(monthly_snapshots(months=8), HORIZON)


def test_time_split_built_snapshots_no_payment_counted_in_two_splits(tiny_snapshots):
    split = time_split(tiny_snapshots, HORIZON)
    horizon = pd.Timedelta(days=HORIZON)
    train_labels_end = split.train["as_of"].max() + horizon
    valid_labels_end = split.validation["as_of"].max() + horizon
    assert train_labels_end <= split.validation["as_of"].min()
    assert valid_labels_end <= split.test["as_of"].min()
    assert min(len(split.train), len(split.validation), len(split.test)) > 100
