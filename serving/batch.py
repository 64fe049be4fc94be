"""Nightly batch scoring: snapshot chunks in, one scored Parquet file out, atomically.

The scorer works chunk by chunk (``DEFAULT_CHUNK_ROWS`` rows at a time), so memory stays bounded
by a chunk whatever the number of open balances. Output goes through :class:`AtomicParquetWriter`:
rows are streamed into a hidden temporary file in the output's directory, which replaces the
output path only when every chunk is written (and the audit trail has recorded the run); a failed
run removes its temporary file and leaves any earlier output untouched. A process killed outright
(SIGKILL) can leave a hidden ``.NAME.*.tmp`` file behind, never a partial file at the output path.

Numbers come from the model (``features.model``), reasons from ``serving.reasons`` (optional:
TreeSHAP costs several plain predictions) and the action from the policy (``serving.policy``).
How chunks are spread over threads and processes is ``serving.batch_parallel``'s business.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.errors import ArscoreError
from features.model import CollectibilityModel

DEFAULT_CHUNK_ROWS = 100_000
HASH_BLOCK_BYTES = 1 << 20
RISK_BANDS = ("very_low", "low", "medium", "high")
"""Collectibility bands from the lowest probability to the highest, split at the cut points."""

ActionsFn = Callable[[pd.DataFrame, list[list[str]] | None], tuple[list[str], str]]
"""(snapshot rows with probability_collected and expected_recovery, reasons) -> actions, policy
version."""
ReasonsFn = Callable[[pd.DataFrame, np.ndarray], list[list[str]]]
"""(snapshot rows, feature matrix) -> up to four reason sentences per row."""


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def risk_band(probability: np.ndarray, cuts: Sequence[float]) -> np.ndarray:
    """Band of each probability: ``RISK_BANDS[i]`` for the i-th interval between the cuts."""
    if len(cuts) + 1 > len(RISK_BANDS):
        raise ArscoreError(f"at most {len(RISK_BANDS) - 1} risk band cut points, got {len(cuts)}")
    labels = np.asarray(RISK_BANDS[: len(cuts) + 1], dtype=object)
    return labels[np.searchsorted(np.asarray(cuts, dtype=np.float64), probability, side="right")]


def output_schema() -> pa.Schema:
    """The columns of a scored file, one row per open balance."""
    return pa.schema(
        [
            ("claim_id", pa.string()),
            ("as_of", pa.timestamp("ns")),
            ("probability_collected", pa.float64()),
            ("expected_recovery", pa.float64()),
            ("risk_band", pa.dictionary(pa.int8(), pa.string())),
            ("action", pa.dictionary(pa.int32(), pa.string())),
            ("reasons", pa.list_(pa.string())),
            ("model_version", pa.dictionary(pa.int8(), pa.string())),
            ("policy_version", pa.dictionary(pa.int8(), pa.string())),
        ]
    )


class AtomicParquetWriter:
    """Streams tables into a temporary file beside ``out`` and renames it into place on success.

    Use as a context manager. On a clean exit the file is closed, synced and hashed
    (``sha256``), ``before_commit(temporary_path, sha256, rows)`` runs if given, and only then
    is the file renamed to ``out``; any exception on the way removes the temporary file.
    """

    def __init__(
        self,
        out: Path,
        schema: pa.Schema,
        before_commit: Callable[[Path, str, int], None] | None = None,
        compression: str = "zstd",
    ):
        self.out = Path(out)
        if self.out.suffix != ".parquet":
            raise ArscoreError(f"{self.out}: the scored output must be a .parquet file")
        self.schema = schema
        self.before_commit = before_commit
        self.compression = compression
        self.rows = 0
        self.sha256: str | None = None
        self._temp: Path | None = None
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> AtomicParquetWriter:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.out.name}.", suffix=".tmp", dir=self.out.parent)
        os.close(fd)
        self._temp = Path(name)
        try:
            self._writer = pq.ParquetWriter(name, self.schema, compression=self.compression)
        except BaseException:
            self._temp.unlink(missing_ok=True)
            raise
        return self

    def write(self, table: pa.Table) -> None:
        """Append one chunk of rows (in the writer's schema)."""
        if self._writer is None:
            raise ArscoreError("AtomicParquetWriter.write outside its `with` block")
        self._writer.write_table(table)
        self.rows += table.num_rows

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._temp is not None and self._writer is not None
        try:
            self._writer.close()
            if exc_type is None:
                with self._temp.open("rb") as handle:
                    os.fsync(handle.fileno())
                self.sha256 = file_sha256(self._temp)
                if self.before_commit is not None:
                    self.before_commit(self._temp, self.sha256, self.rows)
                os.replace(self._temp, self.out)
        finally:
            self._temp.unlink(missing_ok=True)


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
class BatchScorer:
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


def read_snapshot_chunks(
    path: Path, columns: Sequence[str], chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """A snapshot Parquet file as frames of at most ``chunk_rows`` rows (only ``columns``)."""
    source = open_snapshot_table(path)
    present = set(source.schema_arrow.names)
    missing = [c for c in columns if c not in present and c != "as_of"]
    if missing:
        raise ArscoreError(f"{path}: the snapshot table lacks column(s) " + ", ".join(missing))
    wanted = [c for c in columns if c in present]
    for batch in source.iter_batches(batch_size=chunk_rows, columns=wanted):
        yield batch.to_pandas(types_mapper=_string_types)


def open_snapshot_table(path: Path) -> pq.ParquetFile:
    """The snapshot Parquet file, or an error naming it."""
    path = Path(path)
    if path.suffix != ".parquet" or not path.is_file():
        raise ArscoreError(f"{path}: expected an existing .parquet snapshot table")
    return pq.ParquetFile(path)


def _string_types(arrow_type: pa.DataType) -> Any:
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype()
    return None


def split_rows(frame: pd.DataFrame, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """A frame as consecutive slices of at most ``chunk_rows`` rows."""
    for start in range(0, len(frame), chunk_rows):
        yield frame.iloc[start : start + chunk_rows]


@dataclass(frozen=True)
class BatchOutcome:
    """What a run wrote: rows, the output file and its sha256."""

    rows: int
    out: Path
    output_sha256: str


def write_scored(
    tables: Iterable[pa.Table],
    out: Path,
    progress: Callable[[int], None] | None = None,
    before_commit: Callable[[Path, str, int], None] | None = None,
) -> BatchOutcome:
    """Stream scored tables into ``out`` atomically; ``progress`` hears rows as they land."""
    with AtomicParquetWriter(out, output_schema(), before_commit) as writer:
        for table in tables:
            writer.write(table)
            if progress is not None:
                progress(table.num_rows)
    assert writer.sha256 is not None
    return BatchOutcome(rows=writer.rows, out=Path(out), output_sha256=writer.sha256)
