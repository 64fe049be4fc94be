"""How batch chunks are spread over the cores of one machine.

* ``jobs`` 1: one process; LightGBM predicts chunk i+1 (it releases the GIL and uses every core)
  while a second thread applies the policy to chunk i and builds its table. The fastest way
  through a snapshot table since the policy is vectorized (bench/README.md: 85% of
  ``Booster.predict`` against 63% with 2 processes on 2 cores).
* ``jobs`` N: N scoring processes on one core each, chunks (or patient partitions of a history)
  sent to them in order, at most 2N in flight: what spreads the single-threaded pandas snapshot
  building of a history over the cores. A scoring process never outlives its parent, even one
  killed with SIGKILL.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from typing import Any

import pandas as pd
import pyarrow as pa

from features.history import History
from features.patient_partitions import iter_partitions
from features.snapshots import build_snapshots
from serving.batch.files import output_schema, split_rows
from serving.batch.scorer import ChunkScorer

PARENT_POLL_SECONDS = 1.0


def pipelined(scorer: ChunkScorer, chunks: Iterable[pd.DataFrame]) -> Iterator[pa.Table]:
    """Scored tables in order; the policy of chunk i runs in a second thread while the model
    predicts chunk i+1, so at most two chunks are in memory."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="arscore-policy") as pool:
        pending: Future[pa.Table] | None = None
        for chunk in chunks:
            predicted = scorer.predict(chunk)
            if pending is not None:
                yield pending.result()
            pending = pool.submit(scorer.finish, predicted)
        if pending is not None:
            yield pending.result()


_process_scorer: ChunkScorer | None = None


def _exit_with_parent(parent: int) -> None:
    """Leave when the process that started this one is gone (even killed with SIGKILL)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


def _start_scoring_process(scorer: ChunkScorer, parent: int) -> None:
    """Initializer of a scoring process: keep the scorer, predict on one thread, and never
    outlive the parent."""
    from threadpoolctl import threadpool_limits

    global _process_scorer
    _process_scorer = scorer
    threadpool_limits(1, user_api="openmp")
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _run_in_process(work: Callable[[ChunkScorer, Any], pa.Table], item: Any) -> pa.Table:
    assert _process_scorer is not None
    return work(_process_scorer, item)


def in_processes(
    scorer: ChunkScorer,
    items: Iterable[Any],
    jobs: int,
    work: Callable[[ChunkScorer, Any], pa.Table] = ChunkScorer.score,
) -> Iterator[pa.Table]:
    """``work(scorer, item)`` of each item (a snapshot chunk by default) in one of ``jobs``
    processes on one core each, results in order, at most ``2 * jobs`` items in flight.

    The policy is pure Python and holds the GIL: processes are what spread it over the cores.
    ``work`` must be picklable (a module-level function or a partial of one).
    """
    context = multiprocessing.get_context("spawn")
    start = (scorer, os.getpid())
    with ProcessPoolExecutor(jobs, context, _start_scoring_process, start) as pool:
        pending: deque[Future[pa.Table]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(_run_in_process, work, item))
                if len(pending) >= 2 * jobs:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def score_chunks(
    scorer: ChunkScorer, chunks: Iterable[pd.DataFrame], jobs: int = 1
) -> Iterator[pa.Table]:
    """Scored tables in order: in ``jobs`` processes, or (``jobs`` 1) in this process with the
    policy in a second thread."""
    return in_processes(scorer, chunks, jobs) if jobs > 1 else pipelined(scorer, chunks)


def open_balance_chunks(
    history: History, as_of: pd.Timestamp, n_partitions: int, chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """Snapshots of the open balances as of a date, partition by partition (patients kept
    together, so the patient history features are exact), in chunks of at most ``chunk_rows``."""
    for part in iter_partitions(history, n_partitions):
        snapshots = build_snapshots(part, [as_of], labels=None)
        if len(snapshots):
            yield from split_rows(snapshots, chunk_rows)


def score_partition(
    scorer: ChunkScorer, history: History, as_of: pd.Timestamp, chunk_rows: int
) -> pa.Table:
    """Build and score the open balances of one patient partition (a Dask task)."""
    snapshots = build_snapshots(history, [as_of], labels=None)
    tables = [scorer.score(chunk) for chunk in split_rows(snapshots, chunk_rows)]
    return pa.concat_tables(tables) if tables else output_schema().empty_table()


def score_history(
    scorer: ChunkScorer,
    history: History,
    as_of: pd.Timestamp,
    n_partitions: int,
    chunk_rows: int,
    jobs: int = 1,
) -> Iterator[pa.Table]:
    """Scored tables of a history's open balances as of a date, partition by partition: in
    ``jobs`` processes (at least ``2 * jobs`` partitions), or in this process."""
    if jobs <= 1:
        return pipelined(scorer, open_balance_chunks(history, as_of, n_partitions, chunk_rows))
    parts = iter_partitions(history, max(n_partitions, 2 * jobs))
    work = partial(score_partition, as_of=as_of, chunk_rows=chunk_rows)
    return in_processes(scorer, parts, jobs, work)
