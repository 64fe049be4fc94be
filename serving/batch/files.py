"""The scored file of a nightly batch: its schema, snapshot chunks read in, scored rows written
out atomically.

Work goes chunk by chunk (``DEFAULT_CHUNK_ROWS`` rows at a time), so memory stays bounded by a
chunk whatever the number of open balances. Output goes through :class:`AtomicParquetWriter`:
rows are streamed into a hidden temporary file in the output's directory, which replaces the
output path only when every chunk is written (and the audit trail has recorded the run); a failed
run removes its temporary file and leaves any earlier output untouched. A process killed outright
(SIGKILL) can leave a hidden ``.NAME.*.tmp`` file behind, never a partial file at the output path.
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

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.errors import ArscoreError

DEFAULT_CHUNK_ROWS = 100_000


HASH_BLOCK_BYTES = 1 << 20


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


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
