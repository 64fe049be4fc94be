"""An MLflow pyfunc wrapper around the saved ``CollectibilityModel`` directory.

It lets ``mlflow models serve -m models:/arscore@champion`` serve the very model arscore's own
server loads, for comparison. Only this module imports mlflow; ``features.model`` does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from features.model import CollectibilityModel

MODEL_ARTIFACT_KEY = "collectibility_model"
"""Key (and directory name) of the saved model inside the pyfunc model's ``artifacts/``."""


class CollectibilityPyfunc(PythonModel):
    """Scores snapshot rows: returns claim_id, probability_collected, expected_recovery."""

    def load_context(self, context: Any) -> None:
        """Load the saved model directory that MLflow unpacked from the artifacts."""
        self._model = CollectibilityModel.load(Path(context.artifacts[MODEL_ARTIFACT_KEY]))

    # No type hints on predict: MLflow would read them as an input schema of its own.
    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        """Score a frame of snapshot rows (the model's input columns; others are ignored)."""
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return self._model.score(frame).reset_index(drop=True)
