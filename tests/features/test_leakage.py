"""Leakage: nothing dated after the as-of date may move any feature of a snapshot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.history import History, validate_history
from features.snapshots import LABEL_COLUMNS, build_snapshots
from tests.factories import TEST_KEY
from training.synthetic import GeneratorConfig, generate_history

AS_OF = pd.Timestamp("2025-10-31")
DATA_END = pd.Timestamp("2026-09-30")
NOT_FEATURES = (*LABEL_COLUMNS, "censored")


@pytest.fixture(scope="module")
def history() -> History:
    claims, transactions = generate_history(GeneratorConfig(n_claims=3_000, seed=11))
    return validate_history(claims, transactions, TEST_KEY)


def _features(history: History) -> pd.DataFrame:
    snaps = build_snapshots(history, [AS_OF], labels=None, data_end=DATA_END)
    return snaps.drop(columns=[c for c in NOT_FEATURES if c in snaps.columns])


def _future_mutations(transactions: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Change amounts and dates of, drop some of, and add new events after the as-of date."""
    rng = np.random.default_rng(seed)
    future = transactions["date"] > AS_OF
    mutated = transactions.copy()
    scale = rng.uniform(0.1, 3.0, int(future.sum()))
    mutated.loc[future, "amount"] = (mutated.loc[future, "amount"] * scale).round(2)
    shift = pd.to_timedelta(rng.integers(0, 200, int(future.sum())), unit="D")
    mutated.loc[future, "date"] = mutated.loc[future, "date"] + shift
    dropped = mutated[~future | (rng.random(len(mutated)) < 0.5)]
    claim_ids = rng.choice(transactions["claim_id"].unique(), 500)
    added = pd.DataFrame(
        {
            "claim_id": pd.array(claim_ids, dtype="string"),
            "date": AS_OF + pd.to_timedelta(rng.integers(1, 300, 500), unit="D"),
            "type": pd.array(
                rng.choice(
                    [
                        "payment",
                        "adjustment",
                        "denial",
                        "statement",
                        "dispute_open",
                        "fap_application",
                    ],
                    500,
                ),
                "string",
            ),
            "amount": rng.uniform(1, 500, 500).round(2),
            "party": pd.array(rng.choice(["payer", "patient"], 500), "string"),
            "carc_group": pd.array(["CO"] * 500, "string"),
            "carc_code": pd.array(rng.choice(["16", "50", "45"], 500), "string"),
            "rarc_code": pd.array([None] * 500, "string"),
            "reason": pd.array(rng.choice(["bad_debt", "charity", None], 500), "string"),
        }
    )
    return pd.concat([dropped, added], ignore_index=True)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_build_snapshots_events_after_as_of_change_no_feature(history, seed):
    before = _features(history)
    mutated = History(history.claims, _future_mutations(history.transactions, seed))
    after = _features(mutated)
    assert len(before) > 500
    pd.testing.assert_frame_equal(before, after)


def test_build_snapshots_events_after_as_of_do_change_labels(history):
    """The mutation above is not a no-op: the labels, which look forward, do move."""
    mutated = History(history.claims, _future_mutations(history.transactions, 1))
    before = build_snapshots(history, [AS_OF], data_end=DATA_END)["recovered_amount"]
    after = build_snapshots(mutated, [AS_OF], data_end=DATA_END)["recovered_amount"]
    assert (before != after).sum() > 50


def test_build_snapshots_event_on_as_of_day_is_seen(history):
    """Negative control: an event dated on the as-of date itself does reach the features."""
    open_claim = _features(history)["claim_id"].iloc[0]
    extra = history.transactions.iloc[[0]].copy()
    extra["claim_id"] = pd.array([open_claim], "string")
    extra["date"] = AS_OF
    extra["type"] = pd.array(["statement"], "string")
    after = _features(History(history.claims, pd.concat([history.transactions, extra])))
    before_row = _features(history).set_index("claim_id").loc[open_claim]
    assert (
        after.set_index("claim_id").loc[open_claim, "n_statements"]
        == before_row["n_statements"] + 1
    )
