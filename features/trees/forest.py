"""A LightGBM booster's predictions and exact contributions through the compiled kernels.

``CompiledBooster(booster)`` reads the booster's own model text (``features.trees.dump``),
builds the kernels' forest once (a few milliseconds per hundred trees: nothing is compiled per
model, so there is nothing to cache on disk) and then answers

* ``predict(X, raw_score=...)``: equal to ``Booster.predict`` (the same additions in the same
  order, LightGBM's own sigmoid), and
* ``contributions(X)``: equal to ``Booster.predict(X, pred_contrib=True)`` to rounding: exact
  path-dependent TreeSHAP, the expected value in the last column,

on the calling thread and ``num_threads - 1`` more, with the GIL released. For a model or an
input the kernels do not reproduce exactly (see ``ModelDump.unsupported``; a matrix that is not
a numeric numpy array of the model's width) it calls LightGBM instead and logs why, once per
reason: never a silently different number.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import lightgbm
import numpy as np

from features.trees.dump import ModelDump, read_model_text

logger = logging.getLogger(__name__)

try:
    from features.trees import _kernel
except ImportError as error:  # pragma: no cover - only without a built extension
    _kernel = None  # type: ignore[assignment]
    _KERNEL_MISSING = f"the compiled kernel is not built ({error}); `pip install -e .` builds it"
else:
    _KERNEL_MISSING = ""

TABLE_MAX_FEATURES = 10  # paths with more distinct features use the extend/unwind recursion
SIGMOID = 1


_openmp: list[Any] = []


def default_threads() -> int:
    """The threads LightGBM's predict would use by default: OpenMP's current maximum (so that
    ``threadpool_limits(1, user_api="openmp")`` and ``OMP_NUM_THREADS`` hold here too), else
    the cores this process may run on."""
    if not _openmp:
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

        _openmp.append(ThreadpoolController().select(user_api="openmp").lib_controllers)
    counts = [controller.num_threads for controller in _openmp[0]]
    if counts:
        return max(1, min(counts))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


class CompiledBooster:
    """``Booster.predict`` and ``pred_contrib`` of one booster, compiled where exact."""

    def __init__(
        self,
        booster: lightgbm.Booster,
        name: str = "booster",
        table_max_features: int = TABLE_MAX_FEATURES,
    ):
        self.booster = booster
        self.name = name
        self.table_max_features = table_max_features
        self._warned: set[str] = set()
        dump = read_model_text(booster.model_to_string())
        self.num_features = dump.num_features
        self.transform = dump.output_transform()
        self.sigmoid = dump.sigmoid
        self.objective = dump.objective
        self.forest: Any = None
        self.unsupported = _KERNEL_MISSING or dump.unsupported() or self._build(dump)
        if self.unsupported:
            self._fall_back(self.unsupported)

    def _build(self, dump: ModelDump) -> str | None:
        try:
            self.forest = _kernel.build(  # type: ignore[union-attr]
                dump.flat_arrays(), dump.num_features, self.table_max_features
            )
        except ValueError as error:
            return str(error)
        return None

    def _fall_back(self, reason: str) -> None:
        if reason not in self._warned:
            self._warned.add(reason)
            logger.warning("%s: %s; LightGBM computes it instead", self.name, reason)

    def _matrix(self, X: Any) -> np.ndarray | None:
        """X as C-contiguous float64 rows if the kernels can take it, else None (logged)."""
        if self.forest is None:
            return None
        if not isinstance(X, np.ndarray) or X.ndim != 2 or X.dtype.kind not in "fiub":
            self._fall_back(f"input of type {type(X).__name__} is not a numeric numpy matrix")
            return None
        if X.shape[1] != self.num_features:
            return None  # LightGBM's own error names the two widths
        return np.ascontiguousarray(X, dtype=np.float64)

    def predict(
        self, X: Any, raw_score: bool = False, num_threads: int | None = None
    ) -> np.ndarray:
        """``Booster.predict(X, raw_score=raw_score)``, one value per row."""
        threads = num_threads or default_threads()
        matrix = self._matrix(X)
        if matrix is not None and not raw_score and self.transform is None:
            self._fall_back(f"no compiled output transform for objective {self.objective!r}")
            matrix = None
        if matrix is None:
            return np.asarray(self.booster.predict(X, raw_score=raw_score, num_threads=threads))
        out = np.empty(matrix.shape[0], dtype=np.float64)
        kind = SIGMOID if not raw_score and self.transform == "sigmoid" else 0
        _kernel.predict(self.forest, matrix, out, threads, kind, self.sigmoid)  # type: ignore[union-attr]
        return out

    def contributions(self, X: Any, num_threads: int | None = None) -> np.ndarray:
        """``Booster.predict(X, pred_contrib=True)``: rows x (features + 1), bias last."""
        threads = num_threads or default_threads()
        matrix = self._matrix(X)
        if matrix is None:
            return np.asarray(self.booster.predict(X, pred_contrib=True, num_threads=threads))
        out = np.empty((matrix.shape[0], self.num_features + 1), dtype=np.float64)
        _kernel.contributions(self.forest, matrix, out, threads)  # type: ignore[union-attr]
        return out

    def describe(self) -> dict[str, Any]:
        """Trees, deepest path, leaves tabulated or recursed, bytes of tables (empty if unused)."""
        return {} if self.forest is None else dict(_kernel.describe(self.forest))  # type: ignore[union-attr]

    def __getstate__(self) -> dict[str, Any]:
        return {"booster": self.booster, "name": self.name, "table": self.table_max_features}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["booster"], state["name"], state["table"])  # type: ignore[misc]
