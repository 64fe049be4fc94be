"""Batch scoring on a Dask cluster: workers build snapshots and score; the client writes.

The scorer (model, policy, reasons) is sent to every worker once. Work goes out as tasks, at
most ``window`` in flight, and scored tables come back in submission order, so the output file
is written by one process through the same atomic writer as a single-machine run and the
client's memory holds a bounded number of chunks.

* From a history: the client splits it by patient (``features.patient_partitions``) and each task
  builds the open-balance snapshots of one partition and scores them: exact patient features.
* From a snapshot table: the client reads chunks and each task scores one chunk.

Dask is imported by the caller's client only; this module needs none of it at import time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

import pandas as pd
import pyarrow as pa

from features.history import History
from serving.batch.parallel import score_partition
from serving.batch.scorer import ChunkScorer


def ordered_results(
    client: Any, submissions: Iterable[Callable[[], Any]], window: int
) -> Iterator[Any]:
    """Results of submitted tasks in submission order, with at most ``window`` in flight.

    Each item of ``submissions`` submits one task and returns its future.
    """
    pending: deque[Any] = deque()
    for submit in submissions:
        pending.append(submit())
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _score_frame(scorer: ChunkScorer, frame: pd.DataFrame) -> pa.Table:
    return scorer.score(frame)


def score_frames_on_cluster(
    client: Any, scorer: ChunkScorer, frames: Iterable[pd.DataFrame], window: int
) -> Iterator[pa.Table]:
    """Scored tables of snapshot chunks, each scored on a worker."""
    [remote_scorer] = client.scatter([scorer], broadcast=True)

    def submissions() -> Iterator[Callable[[], Any]]:
        for frame in frames:
            yield partial(client.submit, _score_frame, remote_scorer, frame, pure=False)

    return ordered_results(client, submissions(), window)


def score_partitions_on_cluster(
    client: Any,
    scorer: ChunkScorer,
    partitions: Iterable[History],
    as_of: pd.Timestamp,
    chunk_rows: int,
    window: int,
) -> Iterator[pa.Table]:
    """Scored tables of the open balances of each patient partition, built and scored remotely."""
    [remote_scorer] = client.scatter([scorer], broadcast=True)

    def submissions() -> Iterator[Callable[[], Any]]:
        for part in partitions:
            yield partial(
                client.submit, score_partition, remote_scorer, part, as_of, chunk_rows, pure=False
            )

    return ordered_results(client, submissions(), window)
