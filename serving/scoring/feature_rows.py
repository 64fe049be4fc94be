"""The model's feature matrix from snapshot dicts, through the fitted pipeline's own encoding,
without a DataFrame per claim.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np

from features.pipeline import FeaturePipeline

NAN = math.nan


def _values_of(names: Sequence[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A snapshot's values of ``names``, as a tuple (``itemgetter`` gives one name bare)."""
    if len(names) == 1:
        only = itemgetter(names[0])
        return lambda snapshot: (only(snapshot),)
    if not names:
        return lambda snapshot: ()
    return itemgetter(*names)


class FeatureRows:
    """Snapshot dicts to the fitted pipeline's float rows, as ``FeaturePipeline.transform``:
    numbers and booleans as floats, missing as NaN, categories as level codes (unseen NaN).

    numpy converts None to NaN and any other value as ``float`` does, so the numeric values go to
    the matrix as they are; a category is looked up as it is (None maps to NaN) and, if not
    found, as its text (``str``), as the pipeline does."""

    def __init__(self, pipeline: FeaturePipeline):
        self.numeric = list(pipeline.numeric)
        self.categorical = list(pipeline.categorical)
        self.codes = {
            name: {level: float(code) for code, level in enumerate(pipeline.levels_[name])}
            for name in self.categorical
        }
        self.width = len(self.numeric) + len(self.categorical)
        self._numeric_values = _values_of(self.numeric)
        self._categories = [(name, itemgetter(name)) for name in self.categorical]
        self._lookups = {name: {**codes, None: NAN} for name, codes in self.codes.items()}

    def _code(self, name: str, value: Any) -> float:
        """The level code of one category value (NaN for missing or unseen)."""
        return NAN if value is None else self.codes[name].get(str(value), NAN)

    def row(self, snapshot: dict[str, Any]) -> list[float]:
        """One feature row (matrix column order: numeric, then categorical)."""
        values = [NAN if v is None else float(v) for v in self._numeric_values(snapshot)]
        values.extend(self._code(name, value(snapshot)) for name, value in self._categories)
        return values

    def matrix(self, snapshots: Sequence[dict[str, Any]]) -> np.ndarray:
        """The float64 feature matrix of several snapshots."""
        matrix = np.empty((len(snapshots), self.width), dtype=np.float64)
        if not snapshots:
            return matrix
        n_numeric = len(self.numeric)
        numeric = chain.from_iterable(map(self._numeric_values, snapshots))
        matrix[:, :n_numeric] = np.fromiter(
            numeric, dtype=np.float64, count=len(snapshots) * n_numeric
        ).reshape(len(snapshots), n_numeric)
        for offset, (name, value) in enumerate(self._categories, start=n_numeric):
            values = list(map(value, snapshots))
            codes = list(map(self._lookups[name].get, values))
            if None in codes:  # an unseen level, or a value that is not text
                codes = [
                    self._code(name, v) if c is None else c
                    for c, v in zip(codes, values, strict=True)
                ]
            matrix[:, offset] = codes
        return matrix
