"""The synthetic history as 837/835 files and back: the same claims, balances and model quality.

One generated history of 3,000 claims (seed 11) is written as X12 by ``write_x12`` and as the
interchange format by ``write_history``; the X12 is imported, the patient events merged in, and
both histories are read with ``read_history``. The quality check runs the steps of
``arscore train`` (snapshots, time split, fit, evaluation) on both with 20 boosting rounds of 7
leaves; the registry and the report, which do not change the metrics, are left out for time.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
import pyx12.error_handler
import pyx12.params
import pyx12.x12context

from features.events import amount_cents
from features.history import read_history, read_raw
from features.importing import merge_patient_events
from features.x12 import read_x12
from features.x12.envelope import read_transaction_sets
from tests.factories import TEST_KEY
from training.config import load_config
from training.evaluation import ScoreSet, evaluate
from training.fit import PRIMARY_MODEL, fit_models
from training.split import time_split
from training.synthetic import GeneratorConfig, generate_history, write_history
from training.synthetic.x12 import PATIENT_EVENTS_FILE, remitted, write_x12
from training.train import Steps, check_snapshots, snapshots_from_history

CONFIG = GeneratorConfig(n_claims=3_000, seed=11)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    claims, transactions = generate_history(CONFIG)
    copies = claims.copy(), transactions.copy()
    folder = tmp_path_factory.mktemp("x12")
    written = write_x12(claims, transactions, folder / "x12")
    write_history(claims, transactions, folder / "generated", "csv")
    return claims, transactions, copies, written, folder


@pytest.fixture(scope="module")
def imported(generated):
    *_, folder = generated
    x12 = folder / "x12"
    result = read_x12([x12 / "837"], [x12 / "835"])
    events = x12 / PATIENT_EVENTS_FILE
    transactions = merge_patient_events(
        result.claims, result.transactions, read_raw(events), str(events)
    )
    out = folder / "imported"
    out.mkdir()
    result.claims.to_csv(out / "claims.csv", index=False, date_format="%Y-%m-%d")
    transactions.to_csv(out / "transactions.csv", index=False, date_format="%Y-%m-%d")
    return result, read_history(folder / "generated", TEST_KEY), read_history(out, TEST_KEY)


def test_write_x12_leaves_the_generated_history_as_it_was(generated):
    claims, transactions, (claims_before, transactions_before), _, _ = generated
    pd.testing.assert_frame_equal(claims, claims_before)
    pd.testing.assert_frame_equal(transactions, transactions_before)
    again_claims, again_transactions = generate_history(CONFIG)
    pd.testing.assert_frame_equal(again_claims, claims)
    pd.testing.assert_frame_equal(again_transactions, transactions)


def test_write_x12_splits_the_transactions_between_835s_and_patient_events(generated):
    _, transactions, _, written, _ = generated
    events = pd.read_csv(written.patient_events, dtype=str)
    assert written.remitted_transactions + len(events) == len(transactions)
    assert written.remitted_transactions == int(remitted(transactions).sum()) > 0
    assert not set(events["type"]) & {"denial", "transfer"}
    assert set(events.loc[events["type"] == "payment", "party"]) == {"patient"}
    assert {p.suffix for p in written.claim_files} == {".x12"}
    assert {p.suffix for p in written.remit_files} == {".835"}


def test_x12_round_trip_gives_the_same_claims(imported):
    result, generated, back = imported
    assert set(result.claims["source"]) == {"837"}
    left = generated.claims.sort_values("claim_id", ignore_index=True)
    right = back.claims.drop(columns="source").sort_values("claim_id", ignore_index=True)
    pd.testing.assert_frame_equal(left, right, check_dtype=False)


def _balances(history) -> pd.Series:
    tx = history.transactions
    cents = pd.Series(amount_cents(tx["amount"]), index=tx.index)
    sign = tx["type"].map({"payment": -1, "adjustment": -1, "refund": 1}).fillna(0).astype(int)
    moved = (cents * sign).groupby(tx["claim_id"]).sum()
    charge = pd.Series(
        amount_cents(history.claims["total_charge"]), index=history.claims["claim_id"]
    )
    return charge.add(moved, fill_value=0).astype(np.int64).sort_index()


def test_x12_round_trip_gives_the_same_balance_per_claim_to_the_cent(imported):
    _, generated, back = imported
    pd.testing.assert_series_equal(_balances(generated), _balances(back))
    assert (_balances(generated) != 0).sum() > 100  # open balances are compared, not only zeros


def test_x12_round_trip_gives_the_same_transactions(imported):
    result, generated, back = imported
    columns = list(generated.transactions.columns)

    def ordered(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame[columns].assign(amount=amount_cents(frame["amount"]))
        return frame.sort_values(columns, ignore_index=True, na_position="first")

    pd.testing.assert_frame_equal(
        ordered(generated.transactions), ordered(back.transactions), check_dtype=False
    )
    assert result.warnings == []  # the generated files balance and their counts match


def test_x12_round_trip_model_quality_within_0_005_auc(imported):
    _, generated, back = imported
    config = load_config(
        overrides={
            "lightgbm": {"num_boost_round": 20, "num_leaves": 7, "min_data_in_leaf": 20},
            "recovery": {"num_boost_round": 20, "num_leaves": 7, "min_data_in_leaf": 20},
        }
    )
    aucs = []
    for history in (generated, back):
        snapshots = check_snapshots(snapshots_from_history(history, config, Steps(None)), config)
        split = time_split(snapshots, config.horizon_days)
        fitted = fit_models(split, config, {"model_name": "x12-round-trip"})
        scores = {name: ScoreSet(*pair) for name, pair in fitted.scores(split.test).items()}
        aucs.append(evaluate(split.test, scores).metrics[PRIMARY_MODEL]["roc_auc"])
    assert aucs[0] > 0.75  # a model that learned something is compared
    assert abs(aucs[0] - aucs[1]) <= 0.005


def test_x12_remittances_alone_build_the_remitted_claims(generated):
    claims, transactions, _, _, folder = generated
    result = read_x12([], [folder / "x12" / "835"])
    built = result.claims.set_index("claim_id")
    remitted_ids = set(transactions.loc[remitted(transactions), "claim_id"])
    assert set(built.index) == remitted_ids
    assert set(built["source"]) == {"835"}
    truth = claims.set_index("claim_id").loc[built.index]
    for column in (
        "patient_id",
        "payer_id",
        "payer_type",
        "claim_type",
        "place_of_service",
        "service_date",
        "billed_date",
        "total_charge",
    ):
        pd.testing.assert_series_equal(
            built[column], truth[column], check_dtype=False, check_names=False
        )
    assert {w.kind for w in result.warnings} == {"claim_from_remittance"}


def test_pyx12_counts_the_same_segments_as_our_reader(generated):
    _, _, _, written, _ = generated
    for path in (written.claim_files[3], written.remit_files[5]):
        tally: Counter = Counter()
        sets = list(read_transaction_sets(path, [], tally=tally))
        with open(path) as handle:
            reader = pyx12.x12context.X12ContextReader(
                pyx12.params.params(), pyx12.error_handler.errh_null(), handle
            )
            theirs = sum(1 for _ in reader.iter_segments())
        assert theirs == tally["segments"] > 3 * len(sets), path.name
