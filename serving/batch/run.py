"""A batch run put together: what to score, the prepared scorer and audit, the scored tables.

``arscore score`` parses its options and calls these: ``prepare_run`` loads the model, the
policy and the input and hashes the input files; ``scored_tables`` yields the scored tables of
the run, from a snapshot table or a history's open balances, in processes on this machine or on
a Dask cluster; ``write_scored`` (``serving.batch.files``) writes them with the run's audit
``commit`` as its last step before the rename.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from features.history import History, find_table, read_history
from features.patient_partitions import iter_partitions, partition_count, worker_count
from features.schema import CLAIMS_FILE_STEM, TRANSACTIONS_FILE_STEM
from serving.audit.store import AuditStore
from serving.batch import parallel
from serving.batch.audit import BatchAudit
from serving.batch.dask_scoring import score_frames_on_cluster, score_partitions_on_cluster
from serving.batch.files import file_sha256, open_snapshot_table, read_snapshot_chunks
from serving.batch.scorer import ChunkScorer, chunk_scorer
from serving.policy.config import Policy, load_policy
from serving.scoring.loader import LoadedModel, load_model
from serving.settings import Settings


@dataclass
class PreparedRun:
    """Everything a run needs before the first row is scored."""

    loaded: LoadedModel
    policy: Policy
    history: History | None
    scorer: ChunkScorer
    audit: BatchAudit


@dataclass(frozen=True)
class Source:
    """What to score: a snapshot file (all rows, or one as-of date of it) or a history's open
    balances as of a date; in chunks of ``chunk_rows``, history split by patient."""

    snapshots: Path | None
    as_of: pd.Timestamp | None
    chunk_rows: int
    claims_per_partition: int
    jobs: int


def input_hashes(paths: Sequence[Path]) -> dict[str, str]:
    """sha256 of each input file, by its path as given."""
    return {str(path): file_sha256(path) for path in paths}


def prepare_run(
    audit_store: AuditStore,
    settings: Settings,
    *,
    history: Path | None,
    snapshots: Path | None,
    model: str | None,
    policy: Path | None,
    reasons: bool,
    pseudonym_key: bytes | None,
    now: datetime,
) -> PreparedRun:
    """Load model, policy and input, and hash the inputs (a history needs the pseudonym key)."""
    loaded = load_model(model or settings.model_uri, settings.mlflow_tracking_uri, now=now)
    chosen_policy = load_policy(policy or settings.policy_file)
    loaded_history, available = None, None
    if snapshots is not None:
        paths = [snapshots]
        available = open_snapshot_table(snapshots).schema_arrow.names
    else:
        assert history is not None and pseudonym_key is not None
        paths = [find_table(history, CLAIMS_FILE_STEM), find_table(history, TRANSACTIONS_FILE_STEM)]
        loaded_history = read_history(history, pseudonym_key)
    audit = BatchAudit(audit_store, loaded, chosen_policy.version, input_hashes(paths))
    scorer = chunk_scorer(loaded, chosen_policy, settings.risk_band_cuts, reasons, available)
    return PreparedRun(loaded, chosen_policy, loaded_history, scorer, audit)


def _filter_as_of(
    frames: Iterator[pd.DataFrame], as_of: pd.Timestamp | None
) -> Iterator[pd.DataFrame]:
    for frame in frames:
        if as_of is not None and "as_of" in frame.columns:
            frame = frame[(frame["as_of"] == as_of).to_numpy()]
        if len(frame):
            yield frame


def scored_tables(
    client: Any, run: PreparedRun, source: Source
) -> tuple[Iterator[pa.Table], int | None]:
    """The scored tables of the run (lazily) and the number of rows if known in advance; on
    the Dask ``client``'s cluster when one is given, else in ``source.jobs`` processes here."""
    window = 2 * worker_count(client) if client is not None else 0
    if source.snapshots is not None:
        table = open_snapshot_table(source.snapshots)
        total = None if source.as_of is not None else table.metadata.num_rows
        chunks = read_snapshot_chunks(source.snapshots, run.scorer.input_columns, source.chunk_rows)
        frames = _filter_as_of(chunks, source.as_of)
        if client is None:
            n_chunks = math.ceil(table.metadata.num_rows / source.chunk_rows)
            return parallel.score_chunks(run.scorer, frames, min(source.jobs, n_chunks)), total
        return score_frames_on_cluster(client, run.scorer, frames, window), total
    assert run.history is not None
    as_of, rows = source.as_of, source.chunk_rows
    n_partitions = partition_count(run.history, source.claims_per_partition)
    if client is None:
        tables = parallel.score_history(
            run.scorer, run.history, as_of, n_partitions, rows, source.jobs
        )
        return tables, None
    parts = iter_partitions(run.history, max(n_partitions, window))
    return score_partitions_on_cluster(client, run.scorer, parts, as_of, rows, window), None
