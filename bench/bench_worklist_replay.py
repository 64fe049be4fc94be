"""Replay a generated history month by month: the worklist's order against oldest-first and
largest-balance-first, with the same capacity and the same exclusions (policy holds).

Usage: .venv/bin/python bench/bench_worklist_replay.py [--claims 20000] [--touches-per-day 20]
       [--replay-months 9] [--uplift 0.3] [--seed 11]

1. Generate a 24-month history (``training.synthetic``), fit a model (LightGBM, 150 rounds) on
   labelled month-end snapshots whose 90-day labels are complete before the replay starts.
2. At each of the last ``--replay-months`` month-ends with 90 days of history after them, score
   the open balances (``serving.worklist.rescoring.decide_rows``: model + policy), leave out holds,
   and let each strategy work ``touches_per_day x 21`` accounts:
   * worklist: expected net recovery per touch (the order of GET /v1/worklist);
   * oldest first: days since service, descending;
   * largest first: open balance, descending;
   * (variant, for comparison) expected net recovery per account, not divided by touches.
3. Yield model (an assumption, not something the generator knows): the generator's history is
   what happens when accounts are worked the usual way. Working an account in a month secures
   the payments its history shows in the 90 days after the as-of date (each payment credited
   once per strategy, however often the account is worked); an account not worked gets only
   ``1 - uplift`` of them, and the lost ``uplift`` share ends as a write-off. So
   recovered = (1 - uplift) x all payments + uplift x payments of worked accounts, and
   write-offs = history's write-offs + uplift x payments of unworked accounts. Strategies are
   ranked by the payments they reach ("captured"); the uplift only scales the difference.
   Also shown: dollars the worked accounts went on to write off anyway within 90 days (touches
   spent on balances that were lost regardless).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import lightgbm
import numpy as np
import pandas as pd

from features.history import validate_history
from features.model import Calibrator, CollectibilityModel
from features.pipeline import FeaturePipeline
from features.snapshots import build_snapshots, snapshot_calendar
from serving.policy.config import load_policy
from serving.worklist.rescoring import decide_rows, priority_cents
from training.synthetic import GeneratorConfig, generate_history

KEY = b"bench-pseudonym-key-0123456789"
HORIZON = pd.Timedelta(days=90)
WORKING_DAYS = 21
WRITE_OFF_REASONS = ("bad_debt", "small_balance", "denial_write_off", "charity")


def fit_model(snapshots: pd.DataFrame, rounds: int = 150) -> CollectibilityModel:
    """A LightGBM model of the house's shape (classifier + calibration + recovery)."""
    rows = snapshots[snapshots["collected"].notna().to_numpy()]
    pipeline = FeaturePipeline().fit(rows)
    X = pipeline.transform(rows)
    params = {"num_leaves": 31, "learning_rate": 0.05, "verbosity": -1, "seed": 1}

    def booster(label: np.ndarray, objective: str) -> lightgbm.Booster:
        data = lightgbm.Dataset(
            X,
            label=label,
            feature_name=list(pipeline.feature_names_),
            categorical_feature=list(pipeline.categorical_indices_),
        )
        return lightgbm.train({**params, "objective": objective}, data, num_boost_round=rounds)

    y = rows["collected"].to_numpy(dtype=np.float64)
    classifier = booster(y, "binary")
    return CollectibilityModel(
        pipeline=pipeline,
        booster=classifier,
        calibrator=Calibrator("sigmoid").fit(classifier.predict(X), y),
        recovery_booster=booster(rows["recovered_fraction"].to_numpy(np.float64), "cross_entropy"),
        metadata={"purpose": "bench_worklist_replay"},
    )


def strategy_orders(
    snap: pd.DataFrame, priority: np.ndarray, net: np.ndarray
) -> dict[str, np.ndarray]:
    """Row positions of each strategy, best first (ties by claim_id)."""
    claim = snap["claim_id"].astype(str).to_numpy()
    days = snap["days_since_service"].to_numpy(np.float64)
    balance = snap["open_balance"].to_numpy(np.float64)
    return {
        "worklist (ENR/touch)": np.lexsort((claim, -priority)),
        "ENR per account (variant)": np.lexsort((claim, -net)),
        "oldest first": np.lexsort((claim, -days)),
        "largest balance first": np.lexsort((claim, -balance)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=20_000)
    parser.add_argument("--touches-per-day", type=int, default=20)
    parser.add_argument("--replay-months", type=int, default=9)
    parser.add_argument("--uplift", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    started = time.perf_counter()
    config = GeneratorConfig(
        n_claims=args.claims, seed=args.seed, months=24, end_date=dt.date(2026, 9, 30)
    )
    history = validate_history(*generate_history(config), KEY)
    tx = history.transactions
    end = tx["date"].max()
    calendar = snapshot_calendar(history.claims["billed_date"].min(), end)
    replay = [d for d in calendar if d + HORIZON <= end][-args.replay_months :]
    train_dates = [d for d in calendar if d + HORIZON <= replay[0]][-12:]
    model = fit_model(build_snapshots(history, train_dates, data_end=replay[0]))
    policy = load_policy()
    capacity = args.touches_per_day * WORKING_DAYS
    payments = tx[tx["type"] == "payment"][["claim_id", "date", "amount"]]
    write_offs = tx[(tx["type"] == "adjustment") & tx["reason"].isin(WRITE_OFF_REASONS)]
    credited: dict[str, dict[str, pd.Timestamp]] = {}
    totals: dict[str, dict[str, float]] = {}
    span = (replay[0], replay[-1] + HORIZON)
    in_span = payments[(payments["date"] > span[0]) & (payments["date"] <= span[1])]
    all_payments = float(in_span["amount"].sum())
    lost_in_span = write_offs[(write_offs["date"] > span[0]) & (write_offs["date"] <= span[1])]
    history_write_offs = float(lost_in_span["amount"].sum())
    for as_of in replay:
        snap = build_snapshots(history, [as_of], labels=None)
        _, _, recs = decide_rows(snap, model, policy, with_reasons=False)
        keep = np.array([r.action != "hold" for r in recs])
        priority = np.array([priority_cents(r, policy)[0] for r in recs], dtype=np.float64)
        net = np.array([r.expected_net_recovery or 0.0 for r in recs], dtype=np.float64)
        snap, priority, net = snap[keep].reset_index(drop=True), priority[keep], net[keep]
        window = payments[(payments["date"] > as_of) & (payments["date"] <= as_of + HORIZON)]
        lost = write_offs[(write_offs["date"] > as_of) & (write_offs["date"] <= as_of + HORIZON)]
        lost_by_claim = lost.groupby("claim_id")["amount"].sum()
        for name, order in strategy_orders(snap, priority, net).items():
            worked = snap["claim_id"].astype(str).to_numpy()[order[:capacity]]
            seen = credited.setdefault(name, {})
            result = totals.setdefault(name, {"captured": 0.0, "lost_anyway": 0.0, "touches": 0})
            for claim_id in worked:
                since = max(as_of, seen.get(claim_id, as_of))
                mine = window[(window["claim_id"] == claim_id) & (window["date"] > since)]
                result["captured"] += float(mine["amount"].sum())
                seen[claim_id] = as_of + HORIZON
                result["lost_anyway"] += float(lost_by_claim.get(claim_id, 0.0))
            result["touches"] += len(worked)
    print(
        f"{args.claims:,} claims, {len(replay)} months replayed ({replay[0].date()} to "
        f"{replay[-1].date()}), capacity {args.touches_per_day}/day = {capacity}/month, "
        f"uplift {args.uplift:.0%}; {time.perf_counter() - started:.0f} s"
    )
    print(
        f"history: ${all_payments:,.0f} paid, ${history_write_offs:,.0f} written off from "
        f"{span[0].date()} to {span[1].date()} (the replay and its last 90 days)"
    )
    print(
        "| strategy | touches | captured $ | $/touch | recovered $ | write-offs $ "
        "| written off anyway $ |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, result in totals.items():
        captured = result["captured"]
        recovered = (1 - args.uplift) * all_payments + args.uplift * captured
        lost = history_write_offs + args.uplift * (all_payments - captured)
        print(
            f"| {name} | {result['touches']:,} | {captured:,.0f} | "
            f"{captured / max(result['touches'], 1):,.2f} | {recovered:,.0f} | {lost:,.0f} | "
            f"{result['lost_anyway']:,.0f} |"
        )


if __name__ == "__main__":
    main()
