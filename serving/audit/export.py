"""Exports of the trail for auditors: every field of each record, both hashes included, as CSV
or Parquet, so the chain can be re-checked offline.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from serving.audit.records import EXPORT_COLUMNS, AuditRecord, _iso_utc, canonical_json
from serving.audit.tables import EXPORT_CHUNK_ROWS


def _export_rows(records: Iterator[AuditRecord]) -> Iterator[dict[str, Any]]:
    for record in records:
        row = dict(record.__dict__)
        row["created_at"] = _iso_utc(record.created_at)
        row["payload"] = canonical_json(record.payload).decode("utf-8")
        yield row


def _write_csv(records: Iterator[AuditRecord], path: Path) -> int:
    n_rows = 0
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        for row in _export_rows(records):
            writer.writerow(row)
            n_rows += 1
    return n_rows


def _write_parquet(records: Iterator[AuditRecord], path: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    special = {"seq": pa.int64(), "created_at": pa.timestamp("us", tz="UTC")}
    schema = pa.schema([pa.field(name, special.get(name, pa.string())) for name in EXPORT_COLUMNS])
    n_rows = 0
    with pq.ParquetWriter(path, schema) as writer:
        batch: list[dict[str, Any]] = []
        for row in _export_rows(records):
            row["created_at"] = datetime.fromisoformat(row["created_at"])
            batch.append(row)
            if len(batch) == EXPORT_CHUNK_ROWS:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                n_rows, batch = n_rows + len(batch), []
        if batch or n_rows == 0:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            n_rows += len(batch)
    return n_rows


def write_records(
    records: Iterator[AuditRecord], fmt: Literal["csv", "parquet"], path: Path
) -> int:
    """Write the records to ``path`` as CSV or Parquet; returns the number of rows written."""
    writer = _write_csv if fmt == "csv" else _write_parquet
    return writer(records, path)
