"""What the audit trail records of a batch run.

Every run appends one ``batch_run`` entry to the audit chain (model, policy version, sha256 of
every input file, row count, sha256 of the output), and with ``audit_rows`` one ``score`` entry
per scored row first, in chunks, into the same chain as the API's scores. The entries are
appended before the output file is renamed into place: a file at the output path has always
been recorded. Per-row payloads hold what the file holds (numbers, band, action, reasons); the
features are reproducible from the input file, whose hash the ``batch_run`` entry records.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from features.money import rounded_dollars
from serving.audit.records import AuditEntry
from serving.audit.store import AuditStore
from serving.scoring.loader import LoadedModel

BATCH_RUN_KIND = "batch_run"
SCORE_KIND = "score"
AUDIT_CHUNK_ROWS = 5_000


@dataclass
class BatchAudit:
    """What the audit trail records of one run; ``commit`` is the writer's ``before_commit``."""

    store: AuditStore
    loaded: LoadedModel
    policy_version: str
    inputs: dict[str, str]
    details: dict[str, Any] = field(default_factory=dict)
    audit_rows: bool = False
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    score_records: int = 0

    def _entry(self, kind: str, claim_id: str | None, payload: dict[str, Any]) -> AuditEntry:
        return AuditEntry(
            kind=kind,
            requester_key_id=None,
            requester_role=None,
            model_name=self.loaded.name,
            model_version=self.loaded.version,
            model_sha256=self.loaded.sha256,
            policy_version=self.policy_version,
            claim_id=claim_id,
            payload=payload,
        )

    def score_entries(self, scored: Path) -> Iterator[list[AuditEntry]]:
        """One ``score`` entry per row of the scored file, in chunks."""
        for batch in pq.ParquetFile(scored).iter_batches(batch_size=AUDIT_CHUNK_ROWS):
            entries = []
            for row in batch.to_pylist():
                payload = {
                    "batch_run_id": self.run_id,
                    "as_of": row["as_of"],
                    "model_alias": self.loaded.alias,
                    "probability_collected": row["probability_collected"],
                    "expected_recovery": rounded_dollars(row["expected_recovery"]),
                    "risk_band": row["risk_band"],
                    "action": row["action"],
                    "reasons": row["reasons"] or [],
                }
                entries.append(self._entry(SCORE_KIND, row["claim_id"], payload))
            yield entries

    def commit(self, scored: Path, output_sha256: str, rows: int) -> None:
        """Record the run (and every score if asked) before the output is renamed into place."""
        if self.audit_rows:
            for entries in self.score_entries(scored):
                self.store.append(entries)
                self.score_records += len(entries)
        payload = {
            "run_id": self.run_id,
            "model_uri": self.loaded.uri,
            "model_alias": self.loaded.alias,
            "inputs": self.inputs,
            "rows": rows,
            "output_sha256": output_sha256,
            "score_records": self.score_records,
            **self.details,
        }
        self.store.append([self._entry(BATCH_RUN_KIND, None, payload)])
