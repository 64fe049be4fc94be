"""LightGBM's model text (``Booster.model_to_string``) read into flat arrays for the kernels.

The text is LightGBM's own dump: per tree ``split_feature``, ``threshold``, ``decision_type``
(bit 0 categorical, bit 1 default_left, bits 2-3 missing_type None/Zero/NaN), ``left_child`` and
``right_child`` (a negative child ``~j`` is leaf ``j``), ``leaf_value``, ``leaf_count``,
``internal_count``, and for categorical splits ``cat_boundaries`` and ``cat_threshold`` (the
bitsets of the categories that go left; ``threshold`` is then the index of the split's bitset).
Numbers are written with 17 significant digits, so every double reads back exactly.

``unsupported`` says why the compiled kernels cannot reproduce LightGBM for a model (several
trees per iteration, random-forest averaging, linear trees, a split on no training rows, an
output transform other than the identity or the sigmoid); the callers then use LightGBM.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from features.errors import ArscoreError

SIGMOID_OBJECTIVES = ("binary", "cross_entropy", "xentropy")
IDENTITY_OBJECTIVES = ("regression", "regression_l2", "l2", "mean_squared_error", "mse")
_SIGMOID = re.compile(r"sigmoid:([0-9.eE+-]+)")


@dataclass
class TreeArrays:
    """One tree of the dump, as LightGBM writes it (children in LightGBM's numbering)."""

    num_leaves: int
    split_feature: np.ndarray
    threshold: np.ndarray
    decision_type: np.ndarray
    left_child: np.ndarray
    right_child: np.ndarray
    internal_count: np.ndarray
    leaf_value: np.ndarray
    leaf_count: np.ndarray
    cat_boundaries: np.ndarray
    cat_threshold: np.ndarray
    is_linear: bool


@dataclass
class ModelDump:
    """The header fields the kernels depend on and every tree."""

    num_features: int
    num_tree_per_iteration: int
    objective: str
    sigmoid: float
    average_output: bool
    trees: list[TreeArrays] = field(default_factory=list)

    def output_transform(self) -> str | None:
        """``"sigmoid"`` or ``"identity"`` for LightGBM's non-raw predict, None if neither."""
        name = self.objective.split(" ")[0]
        if name in SIGMOID_OBJECTIVES:
            return "sigmoid"
        if name in IDENTITY_OBJECTIVES:
            return "identity"
        return None

    def unsupported(self) -> str | None:
        """Why the kernels cannot reproduce this model exactly, or None if they can."""
        if self.num_tree_per_iteration != 1:
            return f"{self.num_tree_per_iteration} trees per iteration (multiclass)"
        if self.average_output:
            return "averaged trees (random forest mode)"
        for number, tree in enumerate(self.trees):
            if tree.is_linear:
                return f"tree {number} is a linear tree"
            counts = np.concatenate([tree.internal_count, tree.leaf_count])
            if tree.num_leaves > 1 and not np.all(counts > 0):
                return f"tree {number} has a node with no training rows"
        return None

    def flat_arrays(self) -> tuple[np.ndarray, ...]:
        """The arrays ``features.trees._kernel.build`` takes, in its order."""
        trees = self.trees

        def offsets(sizes: list[int]) -> np.ndarray:
            return np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)

        def joined(name: str, dtype: type) -> np.ndarray:
            parts: list[np.ndarray] = [np.asarray(getattr(t, name), dtype=dtype) for t in trees]
            return np.ascontiguousarray(np.concatenate(parts) if parts else np.empty(0, dtype))

        return (
            offsets([t.num_leaves - 1 for t in trees]),
            offsets([t.num_leaves for t in trees]),
            offsets([t.cat_boundaries.size for t in trees]),
            offsets([t.cat_threshold.size for t in trees]),
            joined("split_feature", np.int32),
            joined("threshold", np.float64),
            joined("decision_type", np.int32),
            joined("left_child", np.int32),
            joined("right_child", np.int32),
            joined("internal_count", np.float64),
            joined("leaf_value", np.float64),
            joined("leaf_count", np.float64),
            joined("cat_boundaries", np.int32),
            joined("cat_threshold", np.uint32),
        )


def _numbers(fields: dict[str, str], key: str, dtype: type, size: int) -> np.ndarray:
    text = fields.get(key, "")
    values = np.array(text.split(), dtype=np.float64 if dtype is np.float64 else np.int64)
    if values.size != size:
        raise ArscoreError(f"LightGBM model text: {key} has {values.size} values, expected {size}")
    return values.astype(dtype)


def _tree(fields: dict[str, str]) -> TreeArrays:
    leaves = int(fields["num_leaves"])
    splits = leaves - 1
    num_cat = int(fields.get("num_cat", "0"))
    boundaries = (
        _numbers(fields, "cat_boundaries", np.int64, num_cat + 1)
        if num_cat
        else np.zeros(0, np.int64)
    )
    words = int(boundaries[-1]) if num_cat else 0
    return TreeArrays(
        num_leaves=leaves,
        split_feature=_numbers(fields, "split_feature", np.int32, splits),
        threshold=_numbers(fields, "threshold", np.float64, splits),
        decision_type=_numbers(fields, "decision_type", np.int32, splits),
        left_child=_numbers(fields, "left_child", np.int32, splits),
        right_child=_numbers(fields, "right_child", np.int32, splits),
        internal_count=_numbers(fields, "internal_count", np.float64, splits),
        leaf_value=_numbers(fields, "leaf_value", np.float64, leaves),
        leaf_count=(
            _numbers(fields, "leaf_count", np.float64, leaves)
            if leaves > 1
            else np.ones(1, np.float64)
        ),
        cat_boundaries=boundaries.astype(np.int32),
        cat_threshold=(
            _numbers(fields, "cat_threshold", np.int64, words).astype(np.uint32)
            if num_cat
            else np.zeros(0, np.uint32)
        ),
        is_linear=fields.get("is_linear", "0").strip() == "1",
    )


def read_model_text(text: str) -> ModelDump:
    """The dump of a LightGBM text model; ArscoreError if a tree's fields do not fit together."""
    head, _, body = text.partition("\nTree=")
    header = dict(line.split("=", 1) for line in head.splitlines() if "=" in line)
    if "max_feature_idx" not in header:
        raise ArscoreError("not a LightGBM text model: no max_feature_idx in its header")
    objective = header.get("objective", "")
    sigmoid = _SIGMOID.search(objective)
    dump = ModelDump(
        num_features=int(header["max_feature_idx"]) + 1,
        num_tree_per_iteration=int(header.get("num_tree_per_iteration", "1")),
        objective=objective,
        sigmoid=float(sigmoid.group(1)) if sigmoid else 1.0,
        average_output="average_output" in head.splitlines(),
    )
    blocks: list[dict[str, str]] = []
    for line in ("Tree=" + body).split("\nend of trees", 1)[0].splitlines() if body else []:
        key, sep, value = line.partition("=")
        if key == "Tree":
            blocks.append({})
        elif sep and blocks:
            blocks[-1][key] = value
    dump.trees = [_tree(fields) for fields in blocks]
    return dump
