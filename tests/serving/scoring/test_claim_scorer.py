"""The online scorer gives the offline model's numbers, exact reasons and clear refusals."""

from __future__ import annotations

import datetime as dt
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from features.history import History
from features.money import rounded_dollars
from features.snapshots import build_snapshots
from serving.scoring.claim_scorer import ClaimScorer, NotScorable, ScoreInput
from serving.scoring.loader import LoadedModel
from serving.scoring.online_snapshot import other_claims
from serving.scoring.records import ClaimRecord, EventRecord, OtherClaims, records_from_frames
from tests.model_factory import fit_small_model, labelled_snapshots, small_history

AS_OF = pd.Timestamp("2026-06-30")


@pytest.fixture(scope="module")
def model():
    return fit_small_model(labelled_snapshots(small_history(), months=6), rounds=20)


@pytest.fixture(scope="module")
def scorer(model) -> ClaimScorer:
    loaded = LoadedModel(
        model,
        "arscore",
        "7",
        "champion",
        "models:/arscore@champion",
        "0" * 64,
        datetime(2026, 7, 1, tzinfo=UTC),
    )
    return ClaimScorer(loaded, (0.2, 0.5, 0.8), 4)


@pytest.fixture(scope="module")
def records():
    history = small_history()
    claims, events = records_from_frames(history.claims, history.transactions)
    return history, claims, events


def _by_patient(claims, events):
    patients: dict[str, tuple[list, list]] = {}
    owner = {}
    for claim in claims:
        patients.setdefault(claim.patient_key, ([], []))[0].append(claim)
        owner[claim.claim_id] = claim.patient_key
    for event in events:
        patients[owner[event.claim_id]][1].append(event)
    return patients


def _others(inputs: list[ScoreInput], patients) -> list[OtherClaims]:
    """What each item's patient's other stored claims add as of its date."""
    return [
        other_claims(i.claim.claim_id, *patients.get(i.claim.patient_key, ([], [])), i.as_of)
        for i in inputs
    ]


def _offline_frames(history: History, claim: ClaimRecord) -> History:
    """The history of one item's patient as frames: the item and the patient's other claims."""
    claims = history.claims[history.claims["patient_key"] == claim.patient_key]
    transactions = history.transactions[history.transactions["claim_id"].isin(claims["claim_id"])]
    return History(claims, transactions)


def test_scorer_scores_equal_collectibility_model_score_on_build_snapshots(scorer, model, records):
    history, claims, events = records
    patients = _by_patient(claims, events)
    open_ids = set(build_snapshots(history, [AS_OF], labels=None)["claim_id"])
    chosen = [c for c in claims if c.claim_id in open_ids][:40]
    inputs = [
        ScoreInput(
            c,
            tuple(e for e in patients[c.patient_key][1] if e.claim_id == c.claim_id),
            AS_OF.date(),
        )
        for c in chosen
    ]
    scored = scorer.score(inputs, _others(inputs, patients), with_reasons=True)
    for claim, found in zip(chosen, scored, strict=True):
        frames = _offline_frames(history, claim)
        snaps = build_snapshots(frames, [AS_OF], labels=None, claim_ids=[claim.claim_id])
        offline = model.score(snaps).iloc[0]
        assert found.claim_id == claim.claim_id
        assert found.probability == offline["probability_collected"]
        assert found.expected_recovery == rounded_dollars(offline["expected_recovery"])
        X = model.features(snaps)
        assert list(found.features.values()) == [
            model.pipeline.category_label(n, v)
            if n in model.pipeline.categorical
            else (None if np.isnan(v) else v)
            for n, v in zip(model.pipeline.feature_names_, X[0], strict=True)
        ]


def test_model_views_are_each_rows_values_as_the_model_saw_them(scorer, model, records):
    history = records[0]
    X = model.features(build_snapshots(history, [AS_OF], labels=None).iloc[:50]).copy()
    pipeline = model.pipeline
    names = pipeline.feature_names_
    rng = np.random.default_rng(3)
    X[rng.random(X.shape) < 0.2] = np.nan  # missing values in numbers and categories alike
    X[:, 0] = np.nan  # a column missing in every row
    views = scorer.model_views(X)
    assert len(views) == len(X)
    for row, view in zip(X, views, strict=True):
        assert list(view) == names
        expected = [
            pipeline.category_label(n, v)
            if n in pipeline.categorical
            else (None if np.isnan(v) else v)
            for n, v in zip(names, row, strict=True)
        ]
        assert list(view.values()) == expected
        assert all(v is None or type(v) in (float, str) for v in view.values())
    assert any(type(v) is str for view in views for v in view.values())
    assert scorer.model_views(X[:0]) == []


def test_scorer_contributions_plus_bias_equal_raw_score(scorer, model, records):
    history, claims, events = records
    patients = _by_patient(claims, events)
    snaps = build_snapshots(history, [AS_OF], labels=None).iloc[:30]
    by_id = {c.claim_id: c for c in claims}
    inputs = [
        ScoreInput(by_id[cid], tuple(e for e in events if e.claim_id == cid), AS_OF.date())
        for cid in snaps["claim_id"]
    ]
    scored = scorer.score(inputs, _others(inputs, patients), with_reasons=True)
    raw = model.raw_score(model.features(snaps))
    for found, margin in zip(scored, raw, strict=True):
        assert len(found.contributions) == len(model.pipeline.feature_names_) + 1
        assert sum(found.contributions) == pytest.approx(margin, abs=1e-9)
        top = sorted(
            range(len(found.contributions) - 1), key=lambda i: -abs(found.contributions[i])
        )[:4]
        assert [r.feature for r in found.reasons] == [
            model.pipeline.feature_names_[i] for i in top if found.contributions[i] != 0
        ]


def test_scorer_without_reasons_has_no_contributions(scorer, records):
    history, claims, events = records
    claim_id = build_snapshots(history, [AS_OF], labels=None)["claim_id"].iloc[0]
    claim = next(c for c in claims if c.claim_id == claim_id)
    (found,) = scorer.score(
        [ScoreInput(claim, (), AS_OF.date())], [OtherClaims()], with_reasons=False
    )
    assert found.reasons == [] and found.contributions is None


def test_scorer_claim_billed_after_as_of_not_scorable(scorer):
    claim = ClaimRecord(
        "C1",
        "pk",
        "X",
        "commercial",
        "professional",
        "11",
        dt.date(2026, 7, 1),
        dt.date(2026, 7, 3),
        100.0,
    )
    with pytest.raises(NotScorable) as caught:
        scorer.score(
            [ScoreInput(claim, (), dt.date(2026, 6, 30))], [OtherClaims()], with_reasons=True
        )
    assert caught.value.problems == [(0, "a claim billed on or before as_of 2026-06-30")]


def test_scorer_paid_claim_not_scorable_names_only_that_item(scorer):
    claim = ClaimRecord(
        "C1",
        "pk",
        "X",
        "commercial",
        "professional",
        "11",
        dt.date(2026, 1, 1),
        dt.date(2026, 1, 3),
        100.0,
    )
    paid = (EventRecord("C1", dt.date(2026, 2, 1), "payment", 100.0, "payer"),)
    still_open = ClaimRecord(
        "C2",
        "pk",
        "X",
        "commercial",
        "professional",
        "11",
        dt.date(2026, 1, 1),
        dt.date(2026, 1, 3),
        100.0,
    )
    inputs = [
        ScoreInput(still_open, (), dt.date(2026, 6, 30)),
        ScoreInput(claim, paid, dt.date(2026, 6, 30)),
    ]
    with pytest.raises(NotScorable) as caught:
        scorer.score(inputs, [OtherClaims()] * 2, with_reasons=False)
    assert [p[0] for p in caught.value.problems] == [1]


@pytest.mark.parametrize(
    ("dollars", "cents"), [(12.344999, "12.34"), (0.005000001, "0.01"), (1e-9, "0.00")]
)
def test_to_cents_rounds_to_the_cent(dollars, cents):
    assert rounded_dollars(dollars) == Decimal(cents)


def test_scorer_risk_band_follows_cut_points(scorer, records):
    history, claims, events = records
    patients = _by_patient(claims, events)
    snaps = build_snapshots(history, [AS_OF], labels=None)
    by_id = {c.claim_id: c for c in claims}
    inputs = [ScoreInput(by_id[c], (), AS_OF.date()) for c in snaps["claim_id"]]
    inputs = [i for i in inputs if i.claim.billed_date <= AS_OF.date()]
    scored = []
    for item in inputs:
        try:
            scored += scorer.score([item], _others([item], patients), with_reasons=False)
        except NotScorable:
            continue
    expected = {0: "very_low", 1: "low", 2: "medium", 3: "high"}
    for found in scored:
        assert found.risk_band == expected[sum(found.probability >= c for c in (0.2, 0.5, 0.8))]
