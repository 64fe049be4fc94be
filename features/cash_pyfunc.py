"""An MLflow pyfunc wrapper around the saved ``CashForecastModel`` directory.

It lets the registered cash model be loaded with ``mlflow.pyfunc.load_model`` like the
collectibility model; arscore itself loads the directory with ``CashForecastModel.load``.
Only this module (and ``features.pyfunc``) imports mlflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from features.cash_model import CashForecastModel
from features.cash_weeks import SIDES

CASH_MODEL_ARTIFACT_KEY = "cash_forecast_model"
"""Key (and directory name) of the saved cash model inside the pyfunc model's ``artifacts/``."""


def account_forecast(model: CashForecastModel, snapshots: pd.DataFrame) -> pd.DataFrame:
    """Expected cash per snapshot row and week: claim_id, as_of, week, payer, patient."""
    cash = model.expected_cash(snapshots)
    weeks = cash.shape[1]
    return pd.DataFrame(
        {
            "claim_id": np.repeat(snapshots["claim_id"].astype("string").to_numpy(), weeks),
            "as_of": np.repeat(pd.to_datetime(snapshots["as_of"]).to_numpy(), weeks),
            "week": np.tile(np.arange(1, weeks + 1), len(snapshots)),
            **{f"expected_{side}": cash[:, :, i].reshape(-1) for i, side in enumerate(SIDES)},
        }
    )


class CashForecastPyfunc(PythonModel):
    """Expected cash of snapshot rows per week and side of the cash."""

    def load_context(self, context: Any) -> None:
        """Load the saved model directory that MLflow unpacked from the artifacts."""
        self._model = CashForecastModel.load(Path(context.artifacts[CASH_MODEL_ARTIFACT_KEY]))

    # No type hints on predict: MLflow would read them as an input schema of its own.
    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        """One row per snapshot row and week (the model's input columns; others ignored)."""
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return account_forecast(self._model, frame.reset_index(drop=True))
