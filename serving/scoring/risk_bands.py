"""Risk bands: collectibility probabilities cut into named bands at configured points."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from features.errors import ArscoreError

RISK_BANDS = ("very_low", "low", "medium", "high")
"""Collectibility bands from the lowest probability to the highest, split at the cut points."""


def risk_band(probability: np.ndarray, cuts: Sequence[float]) -> np.ndarray:
    """Band of each probability: ``RISK_BANDS[i]`` for the i-th interval between the cuts."""
    if len(cuts) + 1 > len(RISK_BANDS):
        raise ArscoreError(f"at most {len(RISK_BANDS) - 1} risk band cut points, got {len(cuts)}")
    labels = np.asarray(RISK_BANDS[: len(cuts) + 1], dtype=object)
    return labels[np.searchsorted(np.asarray(cuts, dtype=np.float64), probability, side="right")]
