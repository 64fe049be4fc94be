"""Models and hard rows for the compiled tree kernels' equality tests.

``generated_booster`` fits a small LightGBM model on made-up data with every kind of split
arscore's models hold: numerical splits with missing_type NaN (a feature with NaN in training),
None (no NaN in training) and Zero (``zero_as_missing``), default_left both ways, categorical
splits with one bitset word (few levels) and several (70 levels), and, with ``deep``, paths of
more than ``TABLE_MAX_FEATURES`` distinct features (the extend/unwind branch of the kernel).

``hard_rows`` turns feature rows into test rows that sit where decisions are easiest to get
wrong: exactly on a split threshold and one double either side of it, NaN, 0.0 and -0.0,
values LightGBM reads as zero (|x| <= 1e-35), infinities, and for categorical features
categories never seen in training, negative, fractional and too large for an int.
"""

from __future__ import annotations

from functools import cache

import lightgbm
import numpy as np

from features.trees.dump import read_model_text

K_ZERO_THRESHOLD = float(np.float32(1e-35))
GENERATED_CATEGORICAL = (3, 4)


def generated_rows(n: int, seed: int) -> np.ndarray:
    """Feature rows of the generated models (see module doc)."""
    rng = np.random.default_rng(seed)
    X = np.empty((n, 8))
    X[:, 0] = np.where(rng.random(n) < 0.15, np.nan, rng.normal(size=n))
    X[:, 1] = np.where(rng.random(n) < 0.3, 0.0, rng.normal(size=n))
    X[:, 2] = rng.normal(size=n)
    X[:, 3] = rng.integers(0, 70, n)
    X[:, 4] = rng.integers(0, 5, n)
    X[:, 5] = rng.integers(0, 20, n)
    X[:, 6:] = rng.normal(size=(n, 2))
    return X


def _label(X: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    signal = (
        np.nan_to_num(X[:, 0], nan=1.5)
        + 0.8 * (X[:, 1] == 0)
        + np.sin(X[:, 2] * 2)
        + 0.9 * np.isin(X[:, 3] % 7, (1, 3, 4))
        - 0.5 * X[:, 4]
        + 0.1 * X[:, 5]
        + 0.3 * X[:, 6] * X[:, 7]
    )
    return signal + rng.normal(scale=0.7, size=len(X))


@cache
def generated_booster(variant: str, objective: str = "binary") -> lightgbm.Booster:
    """A small booster on generated rows; ``variant`` is ``nan``, ``zero``, ``none``, ``deep``
    or ``wide``."""
    X = generated_rows(6_000, seed=11)
    signal = _label(X, seed=12)
    if objective == "binary":
        y = (signal > np.median(signal)).astype(np.float64)
    else:
        y = 1.0 / (1.0 + np.exp(-signal))
    params = {
        "objective": objective,
        "num_leaves": 31,
        "max_depth": 8,
        "min_data_in_leaf": 20,
        "max_cat_to_onehot": 8,
        "min_data_per_group": 5,
        "cat_smooth": 1.0,
        "learning_rate": 0.2,
        "verbosity": -1,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "seed": 5,
    }
    rounds = 8
    if variant == "zero":
        params["zero_as_missing"] = True
    elif variant == "none":
        params["use_missing"] = False
    elif variant == "deep":
        params |= {"num_leaves": 60, "max_depth": -1, "min_data_in_leaf": 2, "lambda_l2": 0.0}
        rounds = 6
    elif variant == "wide":  # more than 64 leaves: no leaf bitmasks, the trees are walked
        params |= {"num_leaves": 100, "max_depth": -1, "min_data_in_leaf": 2, "lambda_l2": 0.0}
        rounds = 4
    data = lightgbm.Dataset(X, label=y, categorical_feature=list(GENERATED_CATEGORICAL))
    booster = lightgbm.train(params, data, num_boost_round=rounds)
    return lightgbm.Booster(model_str=booster.model_to_string())


def thresholds_by_feature(booster: lightgbm.Booster) -> dict[int, np.ndarray]:
    """The numerical split thresholds of every feature, from the model's own text."""
    found: dict[int, list[float]] = {}
    for tree in read_model_text(booster.model_to_string()).trees:
        numerical = (tree.decision_type & 1) == 0
        for feature, threshold in zip(
            tree.split_feature[numerical], tree.threshold[numerical], strict=True
        ):
            found.setdefault(int(feature), []).append(float(threshold))
    return {feature: np.unique(values) for feature, values in found.items()}


def hard_rows(
    booster: lightgbm.Booster,
    base: np.ndarray,
    categorical: tuple[int, ...],
    n: int,
    seed: int,
) -> np.ndarray:
    """``n`` rows drawn from ``base`` with hard values put in (see module doc)."""
    rng = np.random.default_rng(seed)
    X = base[rng.integers(0, len(base), n)].copy()
    thresholds = thresholds_by_feature(booster)
    tiny = [
        0.0,
        -0.0,
        1e-36,
        -1e-36,
        K_ZERO_THRESHOLD,
        -K_ZERO_THRESHOLD,
        np.nextafter(K_ZERO_THRESHOLD, 1.0),
        np.inf,
        -np.inf,
    ]
    for column in range(X.shape[1]):
        draw = rng.random(n)
        values = X[:, column]
        if column in categorical:
            seen = np.nanmax(base[:, column])
            odd = [seen + 1, seen + 40, 10**9, 3e9, -1.0, -0.5, 0.5, 2.7, -3e9, np.inf]
            unseen = draw < 0.08
            values[unseen] = rng.choice(odd, unseen.sum())
        else:
            cuts = thresholds.get(column)
            if cuts is not None:
                on = draw < 0.3
                picked = rng.choice(cuts, on.sum())
                step = rng.choice([-1.0, 0.0, 0.0, 1.0], on.sum())
                toward = np.where(step > 0, np.inf, -np.inf)
                values[on] = np.where(step == 0.0, picked, np.nextafter(picked, toward))
            odd_cells = (draw >= 0.3) & (draw < 0.36)
            values[odd_cells] = rng.choice(tiny, odd_cells.sum())
        values[(draw >= 0.9) & (draw < 0.96)] = np.nan
    return X
