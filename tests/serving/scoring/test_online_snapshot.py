"""The online snapshot path gives exactly the values of features.snapshots.build_snapshots."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from features.history import History, validate_history
from features.pipeline import FeaturePipeline
from features.schema import CARC_GROUPS, PAYER_TYPES, TRANSACTION_REASONS, TRANSACTION_TYPES
from features.snapshots import build_snapshots
from serving.scoring.feature_rows import FeatureRows
from serving.scoring.online_snapshot import aging_bucket, claim_snapshot, other_claims
from serving.scoring.records import ClaimRecord, EventRecord, OtherClaims, records_from_frames
from tests.factories import TEST_KEY, claim_row, make_history, tx_row

START = dt.date(2025, 1, 1)
CARCS = ("45", "16", "29", "50", "97", "1", "2", "3", None)


def adversarial_history(n_patients: int, seed: int) -> History:
    """Patients with a few claims whose events crowd onto the same days, amounts of every size
    (so float sums would differ from exact ones), missing values and every event kind."""
    rng = np.random.default_rng(seed)
    claims, transactions = [], []
    for patient in range(n_patients):
        for _ in range(rng.integers(1, 5)):
            claim_id = f"C{len(claims):05d}"
            service = START + dt.timedelta(days=int(rng.integers(0, 120)))
            billed = service + dt.timedelta(days=int(rng.integers(0, 20)))
            charge = float(rng.choice([0.01, 25.0, 180.37, 2500.1, 1e6 + 0.07, 12345678.91]))
            claims.append(
                {
                    "claim_id": claim_id,
                    "patient_id": f"P{patient}",
                    "payer_id": "X1",
                    "payer_type": str(rng.choice(PAYER_TYPES)),
                    "claim_type": str(rng.choice(["professional", "institutional"])),
                    "place_of_service": str(rng.choice(["11", "21", "22", "23"])),
                    "service_date": service.isoformat(),
                    "billed_date": billed.isoformat(),
                    "total_charge": f"{charge:.2f}",
                    "expected_amount": None if rng.random() < 0.3 else f"{charge * 0.6:.2f}",
                    "patient_age": str(int(rng.integers(0, 95))),
                    "patient_state": str(rng.choice(["TX", "NM", "CA"])),
                    "patient_zip3": "750",
                }
            )
            days = billed + dt.timedelta(days=int(rng.integers(0, 40)))
            for _ in range(rng.integers(0, 12)):
                if rng.random() < 0.5:
                    days += dt.timedelta(days=int(rng.integers(0, 30)))
                amount = rng.choice([0.01, 0.1, 3.33, 99.99, 1e6 + 0.03, 7e7 + 0.11]) * (
                    rng.random() < 0.9
                )
                transactions.append(
                    {
                        "claim_id": claim_id,
                        "date": days.isoformat(),
                        "type": str(rng.choice(TRANSACTION_TYPES)),
                        "amount": None if rng.random() < 0.1 else f"{amount:.2f}",
                        "party": rng.choice(["payer", "patient", None]),
                        "carc_group": rng.choice([*CARC_GROUPS, None]),
                        "carc_code": rng.choice(CARCS),
                        "rarc_code": None,
                        "reason": rng.choice([*TRANSACTION_REASONS, None]),
                    }
                )
    order = rng.permutation(len(transactions))
    raw_transactions = pd.DataFrame([transactions[i] for i in order], dtype="object")
    return validate_history(pd.DataFrame(claims, dtype="object"), raw_transactions, TEST_KEY)


def synthetic_history(n_claims: int, seed: int) -> History:
    """Realistic claims and events from the training data generator."""
    from training.synthetic import GeneratorConfig, generate_history

    config = GeneratorConfig(n_claims=n_claims, seed=seed, months=8)
    claims, transactions = generate_history(config)
    claims = claims.assign(patient_id=claims["patient_id"].astype("string"))
    return validate_history(claims, transactions, TEST_KEY)


def by_patient(
    claims: list[ClaimRecord], events: list[EventRecord]
) -> tuple[dict[str, list[ClaimRecord]], dict[str, list[EventRecord]]]:
    """Claims and events grouped by patient key, order kept."""
    claims_of: dict[str, list[ClaimRecord]] = {}
    for claim in claims:
        claims_of.setdefault(claim.patient_key, []).append(claim)
    patient_of = {c.claim_id: c.patient_key for c in claims}
    events_of: dict[str, list[EventRecord]] = {}
    for event in events:
        events_of.setdefault(patient_of[event.claim_id], []).append(event)
    return claims_of, events_of


def online_snapshots(history: History, as_of_dates: list[pd.Timestamp]) -> dict[tuple, dict]:
    """Every (claim_id, as_of) snapshot the online path gives over the same history: each claim
    on its own events, the patient's other claims through ``other_claims``."""
    claims, events = records_from_frames(history.claims, history.transactions)
    claims_of, events_of = by_patient(claims, events)
    own: dict[str, list[EventRecord]] = {}
    for event in events:
        own.setdefault(event.claim_id, []).append(event)
    found = {}
    for as_of in as_of_dates:
        day = as_of.date()
        for claim in claims:
            patient = claim.patient_key
            others = other_claims(
                claim.claim_id, claims_of[patient], events_of.get(patient, []), day
            )
            snap = claim_snapshot(claim, own.get(claim.claim_id, []), others, day)
            if snap is not None:
                found[(claim.claim_id, day)] = snap
    return found


def assert_same_values(expected: pd.DataFrame, found: dict[tuple, dict]) -> None:
    """Same rows, same columns, identical values (NaN and NA on both sides count as equal)."""
    keys = list(zip(expected["claim_id"], expected["as_of"].dt.date, strict=True))
    assert sorted(keys) == sorted(found), "different snapshot rows (open, billed) were built"
    columns = list(expected.columns)
    for position, key in enumerate(keys):
        snap = found[key]
        assert sorted(snap) == sorted(columns)
        for column in columns:
            want, got = expected[column].iloc[position], snap[column]
            if pd.isna(want):
                assert got is None or got != got, (key, column, want, got)
            elif isinstance(want, pd.Timestamp):
                assert want.date() == got, (key, column, want, got)
            else:
                assert want == got, (key, column, want, got)
                assert type(got) is not float or float(want) == got


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_claim_snapshot_adversarial_histories_equal_build_snapshots(seed):
    history = adversarial_history(n_patients=120, seed=seed)
    as_of_dates = [pd.Timestamp(START) + pd.Timedelta(days=d) for d in (0, 15, 45, 90, 160, 400)]
    expected = build_snapshots(history, as_of_dates, labels=None)
    assert len(expected) > 300
    assert_same_values(expected, online_snapshots(history, as_of_dates))


def test_claim_snapshot_synthetic_history_equals_build_snapshots():
    history = synthetic_history(n_claims=1500, seed=11)
    end = history.transactions["date"].max()
    as_of_dates = [end - pd.Timedelta(days=d) for d in (0, 29, 61, 123, 200)]
    expected = build_snapshots(history, as_of_dates, labels=None)
    assert len(expected) > 500
    assert_same_values(expected, online_snapshots(history, as_of_dates))


def test_claim_snapshot_request_transactions_in_any_order_equal_build_snapshots():
    """A request sends a claim's transactions in its own order, and they stand in for whatever
    is stored for that claim: the history build_snapshots sees holds them in that order."""
    history = adversarial_history(n_patients=60, seed=9)
    claims, events = records_from_frames(history.claims, history.transactions)
    claims_of, events_of = by_patient(claims, events)
    rng = np.random.default_rng(9)
    compared = 0
    for claim in claims[::3]:
        own_rows = np.flatnonzero((history.transactions["claim_id"] == claim.claim_id).to_numpy())
        own_rows = own_rows[rng.permutation(len(own_rows))]
        own = [events[i] for i in own_rows]
        frame_transactions = pd.concat(
            [
                history.transactions.iloc[own_rows],
                history.transactions[history.transactions["claim_id"] != claim.claim_id],
            ]
        )
        as_of = pd.Timestamp(claim.billed_date) + pd.Timedelta(days=30)
        expected = build_snapshots(
            History(history.claims, frame_transactions),
            [as_of],
            labels=None,
            claim_ids=[claim.claim_id],
        )
        stored_events = events_of.get(claim.patient_key, [])
        others = other_claims(
            claim.claim_id, claims_of[claim.patient_key], stored_events, as_of.date()
        )
        found = claim_snapshot(claim, own, others, as_of.date())
        assert_same_values(
            expected, {} if found is None else {(claim.claim_id, as_of.date()): found}
        )
        compared += len(expected)
    assert compared > 10


@pytest.mark.parametrize(("later", "code", "group"), [(False, "50", "CO"), (True, "1", "PR")])
def test_claim_snapshot_same_day_denials_last_codes_follow_the_order_given(later, code, group):
    """The last denial codes are those of the latest denial that has one, the order given
    breaking ties between days, as the stable sort of build_snapshots leaves them."""
    same_day = [
        tx_row("C1", "2025-02-10", "denial", carc_group="PR", carc_code="1"),
        tx_row("C1", "2025-02-10", "denial", carc_group="CO", carc_code="50"),
    ]
    transactions = [
        tx_row("C1", "2025-02-01", "denial", carc_group="OA", carc_code="16"),
        *(same_day[::-1] if later else same_day),
        tx_row("C1", "2025-02-10", "denial"),  # no codes: the kept ones stay
        tx_row("C1", "2025-02-03", "denial", carc_group="PI", carc_code="97"),  # earlier
    ]
    history = make_history([claim_row("C1")], transactions)
    as_of = pd.Timestamp("2025-03-01")
    found = online_snapshots(history, [as_of])
    snap = found[("C1", as_of.date())]
    assert (snap["last_carc_code"], snap["last_carc_group"]) == (code, group)
    assert snap["last_denial_date"] == dt.date(2025, 2, 10)
    assert_same_values(build_snapshots(history, [as_of], labels=None), found)


def test_other_claims_leave_out_the_claim_itself_and_the_future():
    day = dt.date(2025, 3, 1)
    claim = ClaimRecord("C1", "pk", "X1", "self_pay", "professional", "11", day, day, 100.0)
    other = claim._replace(claim_id="C2", total_charge=40.25)
    later = claim._replace(claim_id="C3", billed_date=day + dt.timedelta(days=1))
    events = [
        EventRecord("C1", day, "payment", 10.0, "patient"),
        EventRecord("C2", day, "payment", 5.5, "patient"),
        EventRecord("C2", day, "adjustment", 2.0, reason="bad_debt"),
        EventRecord("C2", day + dt.timedelta(days=1), "payment", 7.0, "patient"),
        EventRecord("C3", day, "transfer", 3.0, "payer"),
    ]
    assert other_claims("C1", [claim, other, later], events, day) == OtherClaims(
        billed=1,
        patient_paid_cents=550,
        to_patient_cents=4025 - 300,
        bad_debts=1,
        last_patient_payment=day,
    )
    assert other_claims("C1", [claim], events, day) == OtherClaims()


def test_feature_rows_equal_pipeline_transform():
    history = adversarial_history(n_patients=150, seed=4)
    as_of_dates = [pd.Timestamp(START) + pd.Timedelta(days=d) for d in (30, 90, 150)]
    expected = build_snapshots(history, as_of_dates, labels=None)
    pipeline = FeaturePipeline(min_level_count=3).fit(expected)
    found = online_snapshots(history, as_of_dates)
    keys = list(zip(expected["claim_id"], expected["as_of"].dt.date, strict=True))
    rows = FeatureRows(pipeline).matrix([found[key] for key in keys])
    np.testing.assert_array_equal(rows, pipeline.transform(expected))


def test_feature_rows_matrix_values_of_any_type_equal_row():
    """The matrix converts each value as ``row`` does, bit for bit: None, booleans, integers
    and numpy numbers as floats; categories missing, unseen, or not text (looked up as text)."""
    history = adversarial_history(n_patients=60, seed=6)
    as_of = [pd.Timestamp("2025-03-01")]
    pipeline = FeaturePipeline(min_level_count=1).fit(build_snapshots(history, as_of, labels=None))
    snapshots = [dict(s) for s in online_snapshots(history, as_of).values()]
    numbers = [None, True, 3, 2**53 + 1, -0.0, np.nan, np.float32(0.1), np.int64(7)]
    categories = [None, 11, 21.0, np.str_("commercial"), "not_a_level", "11"]
    for i, snap in enumerate(snapshots):
        snap[pipeline.numeric[i % len(pipeline.numeric)]] = numbers[i % len(numbers)]
        snap[pipeline.categorical[i % len(pipeline.categorical)]] = categories[i % len(categories)]
    snapshots[0]["place_of_service"] = 11
    rows = FeatureRows(pipeline)
    matrix = rows.matrix(snapshots)
    expected = np.array([rows.row(s) for s in snapshots], dtype=np.float64)
    assert matrix.dtype == np.float64 and matrix.flags.c_contiguous
    np.testing.assert_array_equal(matrix.view(np.uint64), expected.view(np.uint64))
    column = pipeline.feature_names_.index("place_of_service")
    assert matrix[0, column] == pipeline.levels_["place_of_service"].index("11")
    assert rows.matrix([]).shape == (0, len(pipeline.feature_names_))


def test_feature_rows_unseen_category_is_nan():
    history = adversarial_history(n_patients=40, seed=5)
    snapshots = build_snapshots(history, [pd.Timestamp("2025-03-01")], labels=None)
    pipeline = FeaturePipeline(min_level_count=1).fit(snapshots)
    snap = dict(next(iter(online_snapshots(history, [pd.Timestamp("2025-03-01")]).values())))
    snap["payer_type"] = "not_a_payer_type"
    row = FeatureRows(pipeline).row(snap)
    assert np.isnan(row[pipeline.feature_names_.index("payer_type")])


@pytest.mark.parametrize(
    ("days", "bucket"),
    [(-3.0, "0-30"), (30.0, "0-30"), (31.0, "31-60"), (120.0, "91-120"), (121.0, "120+")],
)
def test_aging_bucket_edges_match_features(days, bucket):
    from features.snapshots import aging_bucket as frame_bucket

    assert aging_bucket(days) == bucket == frame_bucket(pd.Series([days])).iloc[0]
