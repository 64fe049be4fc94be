"""The one feature pipeline that training fits and the logged model carries to serving."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from features.errors import ArscoreError

NUMERIC_FEATURES: tuple[str, ...] = (
    "open_balance",
    "collectible_balance",
    "patient_balance",
    "payer_balance",
    "total_charge",
    "expected_amount",
    "paid_to_date",
    "payer_paid",
    "patient_paid",
    "contractual_adjusted",
    "other_adjusted",
    "refunded",
    "days_since_service",
    "days_since_billed",
    "days_since_last_payment",
    "days_since_last_statement",
    "days_since_last_denial",
    "days_since_first_statement",
    "n_denials",
    "n_statements",
    "n_payments",
    "n_patient_payments",
    "appeals_filed",
    "appeals_won",
    "fap_applications",
    "fap_approved",
    "disputes_opened",
    "payment_plans",
    "appeal_open",
    "dispute_open",
    "fap_pending",
    "adjudicated",
    "patient_prior_claims",
    "patient_prior_patient_balance",
    "patient_prior_share_paid",
    "patient_prior_bad_debts",
    "patient_days_since_last_payment",
)
CATEGORICAL_FEATURES: tuple[str, ...] = (
    "payer_type",
    "claim_type",
    "place_of_service",
    "last_carc_code",
    "aging_bucket",
    "patient_state",
    "responsibility",
)


class FeaturePipeline(TransformerMixin, BaseEstimator):
    """Snapshot rows to the model's float matrix; categoricals become level codes, unseen -> NaN.

    Patient age and ZIP3 are not model features by default: they are kept for fairness slices.
    """

    def __init__(
        self,
        numeric: Sequence[str] = NUMERIC_FEATURES,
        categorical: Sequence[str] = CATEGORICAL_FEATURES,
        max_levels: int = 64,
        min_level_count: int = 20,
    ):
        self.numeric = numeric
        self.categorical = categorical
        self.max_levels = max_levels
        self.min_level_count = min_level_count

    def fit(self, snapshots: pd.DataFrame, y: object = None) -> FeaturePipeline:
        """Learn the categorical levels seen often enough in training."""
        self._check_columns(snapshots)
        self.levels_: dict[str, list[str]] = {}
        for name in self.categorical:
            counts = snapshots[name].astype("string").value_counts(dropna=True)
            kept = counts[counts >= self.min_level_count].head(self.max_levels)
            self.levels_[name] = sorted(str(level) for level in kept.index)
        self.feature_names_ = [*self.numeric, *self.categorical]
        self.categorical_indices_ = list(range(len(self.numeric), len(self.feature_names_)))
        self.n_features_in_ = len(self.feature_names_)
        return self

    def transform(self, snapshots: pd.DataFrame) -> np.ndarray:
        """The float64 feature matrix for any number of rows, one code path for all sizes."""
        self._check_columns(snapshots)
        matrix = np.empty((len(snapshots), len(self.feature_names_)), dtype=np.float64)
        for position, name in enumerate(self.numeric):
            matrix[:, position] = pd.to_numeric(snapshots[name]).to_numpy(
                dtype=np.float64, na_value=np.nan
            )
        for offset, name in enumerate(self.categorical):
            matrix[:, len(self.numeric) + offset] = self._codes(name, snapshots[name])
        return matrix

    def _codes(self, name: str, values: pd.Series) -> np.ndarray:
        """Level codes of a column (NaN for missing or unseen): each distinct value is looked up
        once, then the codes are gathered (factorize is hashed, not a per-row string lookup)."""
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        distinct = pd.Index(uniques).astype("string").to_numpy(dtype=object, na_value=None)
        lookup = pd.Index(self.levels_[name]).get_indexer(distinct).astype(np.float64)
        lookup[lookup < 0] = np.nan
        return np.append(lookup, np.nan)[codes]  # code -1 (missing) takes the last slot: NaN

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Feature names in matrix column order."""
        return np.asarray(self.feature_names_, dtype=object)

    def category_label(self, feature: str, code: float) -> str | None:
        """The level a category code stands for (None for missing or unseen)."""
        if np.isnan(code):
            return None
        return self.levels_[feature][int(code)]

    def _check_columns(self, snapshots: pd.DataFrame) -> None:
        missing = [c for c in (*self.numeric, *self.categorical) if c not in snapshots.columns]
        if missing:
            raise ArscoreError("snapshot rows lack feature column(s): " + ", ".join(missing))
