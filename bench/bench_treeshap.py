"""Compiled TreeSHAP and predict (features/trees) against LightGBM's own, side by side.

Usage: .venv/bin/python bench/bench_treeshap.py [--workdir bench/out/treeshap] [--rows 20000]
       [--reasons-rows 2000] [--repeats 5] [--threads 1,2]

Two models, built once in ``--workdir`` and reused:

* ``demo``: what `make demo` trains (20,000 claims, seed 7, the training config's LightGBM
  parameters, early stopping), built the way bench/bench_batch.py builds it;
* ``300x31``: both boosters fitted for exactly 300 rounds with the same parameters (31 leaves,
  depth at most 8), on the same snapshots.

For each model, on feature rows of real snapshots (the open balances' rows of the history, drawn
with replacement), and each thread count, the runs take turns ``--repeats`` times and the
fastest of each is kept:

* exact reasons: ``Booster.predict(X, pred_contrib=True)`` against ``model.contributions(X)``;
* plain predict: ``Booster.predict(X)`` against the compiled predict, the classifier alone and
  both boosters (what ``probability`` and ``expected_recovery`` run).

Every compiled result is checked against LightGBM's on the same rows (the largest difference is
printed). Ratios are the figures to compare; the machine's speed is printed beside them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import lightgbm
import numpy as np
import pandas as pd
from bench_batch import build_model
from machine import python_speed_ms, speed_note

from features.model import CollectibilityModel
from features.trees.forest import CompiledBooster
from training.config import TrainingConfig


def fixed_rounds_model(demo_dir: Path, rows: pd.DataFrame, target: Path) -> Path:
    """The demo model's pipeline and calibrator with both boosters refitted for 300 rounds."""
    if (target / "classifier.txt").exists():
        return target
    from training.fit import outcomes, recovered_fraction
    from training.split import time_split

    demo = CollectibilityModel.load(demo_dir)
    config = TrainingConfig()
    split = time_split(rows, config.horizon_days)
    X = demo.features(split.train)
    names = list(demo.pipeline.feature_names_)
    categorical = list(demo.pipeline.categorical_indices_)

    def fit(label: np.ndarray, objective: str) -> lightgbm.Booster:
        data = lightgbm.Dataset(X, label, feature_name=names, categorical_feature=categorical)
        params = config.lightgbm.booster_params(objective, config.seed)
        return lightgbm.train(params, data, num_boost_round=300)

    model = CollectibilityModel(
        demo.pipeline,
        fit(outcomes(split.train), "binary"),
        demo.calibrator,
        fit(recovered_fraction(split.train), "cross_entropy"),
        {"model_name": "bench-300x31"},
    )
    model.save(target)
    return target


def models(workdir: Path) -> tuple[dict[str, CollectibilityModel], pd.DataFrame]:
    """The two models and unlabelled snapshot rows to score (built once, then reused)."""
    rows_file = workdir / "snapshots.parquet"
    if not (workdir / "model" / "classifier.txt").exists() or not rows_file.exists():
        _, rows = build_model(20_000, 7, workdir)
        rows.to_parquet(rows_file)
    rows = pd.read_parquet(rows_file)
    labelled = workdir / "labelled.parquet"
    if not (workdir / "model300" / "classifier.txt").exists():
        from features.history import validate_history
        from features.snapshots import build_snapshots, snapshot_calendar
        from training.synthetic import GeneratorConfig, generate_history

        claims, transactions = generate_history(GeneratorConfig(n_claims=20_000, seed=7))
        history = validate_history(claims, transactions, b"bench-pseudonym-key-not-a-secret")
        start = history.claims["billed_date"].min() + pd.Timedelta(days=90)
        calendar = snapshot_calendar(start, history.transactions["date"].max())
        build_snapshots(history, calendar).to_parquet(labelled)
        fixed_rounds_model(workdir / "model", pd.read_parquet(labelled), workdir / "model300")
    loaded = {
        "demo": CollectibilityModel.load(workdir / "model"),
        "300x31": CollectibilityModel.load(workdir / "model300"),
    }
    return loaded, rows


def interleaved(repeats: int, runs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """The fastest wall time of each run, the runs taken in turn ``repeats`` times."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def shape(booster: lightgbm.Booster) -> str:
    """Trees, most leaves and deepest leaf of a booster."""
    trees = booster.dump_model()["tree_info"]

    def depth(node: dict) -> int:
        if "leaf_index" in node or "leaf_value" in node and "split_index" not in node:
            return 0
        return 1 + max(depth(node["left_child"]), depth(node["right_child"]))

    leaves = max(t["num_leaves"] for t in trees)
    deepest = max(depth(t["tree_structure"]) for t in trees)
    return f"{len(trees)} trees, up to {leaves} leaves, depth {deepest}"


def compare(name: str, model: CollectibilityModel, X: np.ndarray, Xr: np.ndarray, args) -> None:
    """Both comparisons for one model, per thread count; prints a table."""
    booster, recovery = model.booster, model.recovery_booster
    compiled, compiled_recovery = model.compiled_boosters()
    contrib_diff = np.abs(booster.predict(Xr, pred_contrib=True) - model.contributions(Xr)).max()
    predict_diff = max(
        np.abs(booster.predict(X) - compiled.predict(X)).max(),
        np.abs(recovery.predict(X) - compiled_recovery.predict(X)).max(),
    )
    print(f"\n{name}: classifier {shape(booster)}; recovery {shape(recovery)}")
    print(
        f"  largest difference to LightGBM: contributions {contrib_diff:.2e} on {len(Xr):,} rows,"
    )
    print(f"  predictions {predict_diff:.2e} on {len(X):,} rows (both boosters)")
    columns = ("threads", "LightGBM rows/s", "compiled rows/s", "ratio")
    print(
        f"  {'measure':40s} {columns[0]:>7s} {columns[1]:>16s} {columns[2]:>16s} {columns[3]:>6s}"
    )
    for threads in args.threads:
        runs = {
            "contributions (exact reasons)": (
                lambda t=threads: booster.predict(Xr, pred_contrib=True, num_threads=t),
                lambda t=threads: model.contributions(Xr, num_threads=t),
                len(Xr),
            ),
            "predict, classifier": (
                lambda t=threads: booster.predict(X, num_threads=t),
                lambda t=threads: compiled.predict(X, num_threads=t),
                len(X),
            ),
            "predict, both boosters": (
                lambda t=threads: (
                    booster.predict(X, num_threads=t),
                    recovery.predict(X, num_threads=t),
                ),
                lambda t=threads: (
                    compiled.predict(X, num_threads=t),
                    compiled_recovery.predict(X, num_threads=t),
                ),
                len(X),
            ),
        }
        for label, (lightgbm_run, compiled_run, n) in runs.items():
            best = interleaved(args.repeats, {"lightgbm": lightgbm_run, "compiled": compiled_run})
            ratio = best["lightgbm"] / best["compiled"]
            print(
                f"  {label:40s} {threads:7d} {n / best['lightgbm']:16,.0f} "
                f"{n / best['compiled']:16,.0f} {ratio:6.2f}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("bench/out/treeshap"))
    parser.add_argument("--rows", type=int, default=20_000, help="rows for predict")
    parser.add_argument("--reasons-rows", type=int, default=2_000, help="rows for contributions")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    args.threads = [int(t) for t in args.threads.split(",")]
    args.workdir.mkdir(parents=True, exist_ok=True)
    loaded, rows = models(args.workdir)
    picked = rows.iloc[np.random.default_rng(args.seed).integers(0, len(rows), args.rows)]
    before = python_speed_ms()
    for name, model in loaded.items():
        X = model.features(picked)
        started = time.perf_counter()
        CompiledBooster(model.booster), CompiledBooster(model.recovery_booster)
        print(f"\n{name}: kernels of both boosters built in {time.perf_counter() - started:.3f} s")
        compare(name, model, X, X[: args.reasons_rows], args)
    print("\n" + speed_note(before, python_speed_ms()))
    print(
        f"lightgbm {lightgbm.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
