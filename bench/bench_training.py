"""arscore's model fit against a bare ``lightgbm.train`` on the same matrix and parameters.

Usage: .venv/bin/python bench/bench_training.py [--claims 520000] [--seed 7]

Both sides fit the same two boosters (the collectibility classifier and the recovery model)
with the same parameters, validation set and early stopping. arscore's side adds what makes
it a deployable model: fitting and applying the feature pipeline to the snapshot frames and
choosing and fitting the calibrator. The ratio arscore / bare is printed (target <= 1.3).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

import lightgbm
import numpy as np

from features.history import validate_history
from features.snapshots import LabelConfig, build_snapshots, snapshot_calendar
from training.config import load_config
from training.fit import fit_collectibility_model, outcomes, recovered_fraction
from training.split import time_split
from training.synthetic import GeneratorConfig, generate_history
from training.train import after_warmup, check_snapshots, model_metadata

BENCH_KEY = b"bench-pseudonym-key-not-a-secret"


def bare_train(split, model, config) -> None:
    """lightgbm.train alone on the already built matrices, same params and early stopping."""
    pipeline = model.pipeline
    X_train, X_valid = pipeline.transform(split.train), pipeline.transform(split.validation)
    targets = (
        ("binary", config.lightgbm, outcomes),
        ("cross_entropy", config.recovery, recovered_fraction),
    )
    started = time.perf_counter()
    for objective, params, target in targets:
        train_set = lightgbm.Dataset(
            X_train,
            label=target(split.train),
            feature_name=list(pipeline.feature_names_),
            categorical_feature=list(pipeline.categorical_indices_),
        )
        valid_set = lightgbm.Dataset(X_valid, label=target(split.validation), reference=train_set)
        lightgbm.train(
            params.booster_params(objective, config.seed),
            train_set,
            num_boost_round=params.num_boost_round,
            valid_sets=[valid_set],
            callbacks=[lightgbm.early_stopping(params.early_stopping_rounds, verbose=False)],
        )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=520_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    claims, transactions = generate_history(GeneratorConfig(n_claims=args.claims, seed=args.seed))
    history = validate_history(claims, transactions, BENCH_KEY)
    config = load_config()
    calendar = snapshot_calendar(
        history.claims["billed_date"].min(), history.transactions["date"].max()
    )
    snapshots = build_snapshots(history, calendar, LabelConfig(config.horizon_days))
    snapshots = after_warmup(check_snapshots(snapshots, config), config)
    split = time_split(snapshots, config.horizon_days, None, None, 3, 3)
    metadata = model_metadata(config, split, datetime(2026, 11, 27, tzinfo=UTC), None)
    fit_rows = len(split.train) + len(split.validation)
    print(
        f"snapshots: {len(snapshots):,}; fit on train {len(split.train):,} "
        f"+ validation {len(split.validation):,} = {fit_rows:,} rows, "
        f"{len(config.lightgbm.booster_params('binary', 0))} LightGBM params, "
        f"num_threads={config.lightgbm.num_threads}"
    )
    arscore_times, bare_times = [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        model = fit_collectibility_model(split, config, metadata)
        arscore_times.append(time.perf_counter() - started)
        bare_times.append(bare_train(split, model, config))
    arscore_s, bare_s = min(arscore_times), min(bare_times)
    report = model.metadata["fit"]
    print(
        f"rounds: classifier {report['classifier_iterations']}, "
        f"recovery {report['recovery_iterations']} (best iterations, early stopping)"
    )
    print(f"bare lightgbm.train (2 boosters)   {bare_s:7.2f} s  (best of {args.repeats})")
    print(f"arscore fit_collectibility_model   {arscore_s:7.2f} s  (best of {args.repeats})")
    print(f"ratio arscore / bare               {arscore_s / bare_s:7.2f}  (target <= 1.3)")
    print(f"lightgbm {lightgbm.__version__}, numpy {np.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
