"""The chunk scorer of nightly batches: snapshot rows in, scored rows (a table in the output
schema) out: the model's numbers (``features.model``), optional reasons
(``serving.scoring.reasons``: TreeSHAP costs several plain predictions) and the policy's action
(``serving.policy.vector``). How chunks are spread over processes is ``serving.batch.parallel``'s
business, or ``serving.batch.dask_scoring``'s on a cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from features.model import CollectibilityModel
from serving.batch.files import output_schema
from serving.policy.config import Policy
from serving.policy.facts import policy_columns
from serving.policy.recommend import check_model_reasons
from serving.policy.vector import recommend_actions
from serving.scoring.loader import LoadedModel
from serving.scoring.reasons import ReasonTexts
from serving.scoring.risk_bands import risk_band

ActionsFn = Callable[[pd.DataFrame, list[list[str]] | None], tuple[list[str], str]]
"""(snapshot rows with probability_collected and expected_recovery, reasons) -> actions, policy
version."""


ReasonsFn = Callable[[pd.DataFrame, np.ndarray], list[list[str]]]
"""(snapshot rows, feature matrix) -> up to four reason sentences per row."""


def _dictionary(values: Sequence[str] | np.ndarray, index_type: pa.DataType) -> pa.Array:
    encoded = pa.array(values, pa.string()).dictionary_encode()
    return encoded.cast(pa.dictionary(index_type, pa.string()))


def _constant(value: str, rows: int) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(rows, dtype=np.int8)), pa.array([value], pa.string())
    )


@dataclass
class Predicted:
    """A chunk after the model: its rows, the numbers and (if asked) the reasons."""

    rows: pd.DataFrame
    probability: np.ndarray
    expected_recovery: np.ndarray
    reasons: list[list[str]] | None


@dataclass
class ChunkScorer:
    """Scores snapshot chunks: the model's numbers, optional reasons, the policy's action.

    ``actions`` and ``reasons`` are plain callables (see ``ActionsFn``, ``ReasonsFn``) so the
    scorer pickles to Dask workers with the model.
    """

    model: CollectibilityModel
    model_version: str
    actions: ActionsFn
    risk_band_cuts: tuple[float, ...] = (0.2, 0.5, 0.8)
    reasons: ReasonsFn | None = None
    policy_columns: tuple[str, ...] = ()

    @property
    def input_columns(self) -> list[str]:
        """Snapshot columns a chunk must carry (the model's, the policy's and ``as_of``)."""
        wanted = [*self.model.input_columns, "as_of", *self.policy_columns]
        return list(dict.fromkeys(wanted))

    def predict(self, snapshots: pd.DataFrame) -> Predicted:
        """The model's half: probability, expected recovery and reasons of each row."""
        X = self.model.features(snapshots)
        return Predicted(
            rows=snapshots,
            probability=self.model.probability(X),
            expected_recovery=self.model.expected_recovery(snapshots, X),
            reasons=self.reasons(snapshots, X) if self.reasons is not None else None,
        )

    def finish(self, predicted: Predicted) -> pa.Table:
        """The policy's half: the action of each row, and the scored rows as a table."""
        rows, probability = predicted.rows, predicted.probability
        decided = rows.assign(
            probability_collected=probability, expected_recovery=predicted.expected_recovery
        )
        actions, policy_version = self.actions(decided, predicted.reasons)
        n = len(rows)
        if "as_of" in rows.columns:
            as_of = rows["as_of"].to_numpy(dtype="datetime64[ns]")
        else:
            as_of = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
        reasons = predicted.reasons
        columns = {
            "claim_id": pa.array(rows["claim_id"].astype("string"), pa.string()),
            "as_of": pa.array(as_of, pa.timestamp("ns")),
            "probability_collected": pa.array(probability, pa.float64()),
            "expected_recovery": pa.array(predicted.expected_recovery, pa.float64()),
            "risk_band": _dictionary(risk_band(probability, self.risk_band_cuts), pa.int8()),
            "action": _dictionary(actions, pa.int32()),
            "reasons": pa.nulls(n, pa.list_(pa.string()))
            if reasons is None
            else pa.array(reasons, pa.list_(pa.string())),
            "model_version": _constant(self.model_version, n),
            "policy_version": _constant(policy_version, n),
        }
        return pa.Table.from_pydict(columns, schema=output_schema())

    def score(self, snapshots: pd.DataFrame) -> pa.Table:
        """One scored row per snapshot row, in the output schema."""
        return self.finish(self.predict(snapshots))


class PolicyActions:
    """The policy's action for each scored row (a picklable ``serving.batch.scorer.ActionsFn``).

    The actions come from the vectorized ``serving.policy.vector`` path, equal to those of
    ``recommend`` at a small fraction of its cost. The model's reasons are only quoted in a
    recommendation, they never change its action, so they are checked but not used.
    """

    def __init__(self, policy: Policy):
        self.policy = policy

    def __call__(
        self, rows: pd.DataFrame, reasons: list[list[str]] | None
    ) -> tuple[list[str], str]:
        check_model_reasons(reasons, len(rows))
        return recommend_actions(rows, self.policy).tolist(), self.policy.version


def chunk_scorer(
    loaded: LoadedModel,
    policy: Policy,
    risk_band_cuts: Sequence[float],
    with_reasons: bool,
    available_columns: Sequence[str] | None = None,
) -> ChunkScorer:
    """The scorer of a run: the loaded model, the policy's actions, reasons if asked."""
    return ChunkScorer(
        model=loaded.model,
        model_version=loaded.version,
        actions=PolicyActions(policy),
        risk_band_cuts=tuple(risk_band_cuts),
        reasons=ReasonTexts(loaded.model) if with_reasons else None,
        policy_columns=policy_columns(available_columns),
    )
