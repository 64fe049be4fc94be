"""Patient partitions of a history, and snapshot building on them, locally or on a Dask cluster.

A snapshot's patient history features read the patient's other claims, so a history is split
by a hash of ``patient_key``: every claim of a patient, and every transaction of those claims,
lands in the same partition. ``build_snapshots`` on each partition then computes exactly what it
computes on the whole history (the same rows, the same running sums in the same order), and
:func:`combine_snapshots` restores the order of the single-machine table.

Dask is imported inside the functions that need it, so ``features`` stays importable without it.
A cluster is named by an address (``tcp://scheduler:8786``), by ``local:N`` for a LocalCluster of
N worker processes on this machine, or by the environment variable ``ARSCORE_DASK_SCHEDULER``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from features.errors import ArscoreError
from features.history import History
from features.snapshots import LabelConfig, build_snapshots

SCHEDULER_ENV = "ARSCORE_DASK_SCHEDULER"
LOCAL_PREFIX = "local:"
DEFAULT_CLAIMS_PER_PARTITION = 250_000


def partition_of(patient_keys: pd.Series, n_partitions: int) -> np.ndarray:
    """The partition (0..n-1) of each patient key: a stable hash, the same in every process."""
    if n_partitions < 1:
        raise ArscoreError(f"the number of partitions must be at least 1, got {n_partitions}")
    values = patient_keys.astype("string").to_numpy(dtype=object, na_value="")
    hashes = pd.util.hash_array(values, categorize=True)
    return (hashes % np.uint64(n_partitions)).astype(np.int64)


def partition_count(history: History, claims_per_partition: int) -> int:
    """How many partitions keep each one near ``claims_per_partition`` claims."""
    return max(1, math.ceil(len(history.claims) / max(1, claims_per_partition)))


def iter_partitions(history: History, n_partitions: int) -> Iterator[History]:
    """The history split by patient, one partition at a time: claims and their transactions in
    their original row order. Partitions without claims are skipped."""
    claims, transactions = history.claims, history.transactions
    claim_part = partition_of(claims["patient_key"], n_partitions)
    position = pd.Index(claims["claim_id"].astype("string")).get_indexer(
        transactions["claim_id"].astype("string")
    )
    if (position < 0).any():
        raise ArscoreError("a transaction names a claim_id that is not in the claims table")
    tx_part = claim_part[position]
    for part in range(n_partitions):
        claim_rows = claim_part == part
        if not claim_rows.any():
            continue
        yield History(
            claims=claims[claim_rows].reset_index(drop=True),
            transactions=transactions[tx_part == part].reset_index(drop=True),
        )


def partition_history(history: History, n_partitions: int) -> list[History]:
    """Every partition of :func:`iter_partitions` (fewer than ``n_partitions`` if any is empty)."""
    return list(iter_partitions(history, n_partitions))


def combine_snapshots(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Partition snapshots as one table in the single-machine order (as_of, claim_id).

    Empties ``frames`` once they are concatenated, so their memory can go before the sort.
    """
    kept = [frame for frame in frames if len(frame.columns)]
    frames.clear()
    if not kept:
        return pd.DataFrame()
    result = pd.concat(kept, ignore_index=True)
    kept.clear()
    return result.sort_values(["as_of", "claim_id"], kind="stable", ignore_index=True)


def data_end_of(history: History) -> pd.Timestamp:
    """The last date a history covers: its last transaction date."""
    return pd.Timestamp(history.transactions["date"].max())


def build_snapshots_partitioned(
    history: History,
    as_of_dates: Sequence[pd.Timestamp],
    labels: LabelConfig | None = LabelConfig(),
    data_end: pd.Timestamp | None = None,
    n_partitions: int = 1,
    client: Any | None = None,
) -> pd.DataFrame:
    """``build_snapshots`` partition by partition (on the Dask ``client`` if given); equal to
    ``build_snapshots(history, ...)`` row for row."""
    data_end = data_end_of(history) if data_end is None else pd.Timestamp(data_end)
    dates = list(as_of_dates)
    build = partial(build_snapshots, as_of_dates=dates, labels=labels, data_end=data_end)
    parts = iter_partitions(history, n_partitions)
    if client is None:
        return combine_snapshots([build(part) for part in parts])
    futures = [client.submit(build, client.scatter(part), pure=False) for part in parts]
    return combine_snapshots(client.gather(futures))


def cluster_address(address: str | None) -> str | None:
    """The cluster to use: the given address, else ``$ARSCORE_DASK_SCHEDULER``, else none."""
    chosen = address or os.environ.get(SCHEDULER_ENV) or None
    return chosen.strip() if chosen else None


def local_workers(address: str) -> int | None:
    """N for ``local:N`` (a LocalCluster of N workers), None for a scheduler address."""
    if not address.startswith(LOCAL_PREFIX):
        return None
    count = address.removeprefix(LOCAL_PREFIX)
    if not count.isdigit() or int(count) < 1:
        raise ArscoreError(f"cluster {address!r}: expected local:N with N >= 1 workers")
    return int(count)


@contextmanager
def cluster_client(address: str, threads_per_worker: int = 1) -> Iterator[Any]:
    """A Dask client on ``address`` (``local:N`` starts and stops a LocalCluster of N processes).

    Needs the optional dependencies: ``pip install 'arscore[dask]'``.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as missing:
        raise ArscoreError(
            "a Dask cluster needs the optional dependencies: pip install 'arscore[dask]'"
        ) from missing
    n_workers = local_workers(address)
    if n_workers is None:
        try:
            client = Client(address, timeout="30s")
        except OSError as error:
            raise ArscoreError(f"cannot reach the Dask scheduler at {address}: {error}") from None
        try:
            yield client
        finally:
            client.close()
        return
    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def worker_count(client: Any) -> int:
    """How many workers the cluster has right now (at least 1)."""
    return max(1, len(client.scheduler_info().get("workers", {})))


def build_snapshots_on(
    cluster: str | None,
    history: History,
    as_of_dates: Sequence[pd.Timestamp],
    labels: LabelConfig | None = LabelConfig(),
    data_end: pd.Timestamp | None = None,
    progress: Callable[[int], None] | None = None,
    claims_per_partition: int = DEFAULT_CLAIMS_PER_PARTITION,
) -> pd.DataFrame:
    """``build_snapshots`` here (``cluster`` None) or on a Dask cluster (address or ``local:N``),
    with the same result; ``progress`` hears the as-of dates done (all at once on a cluster)."""
    if cluster is None:
        return build_snapshots(history, as_of_dates, labels, data_end, progress=progress)
    with cluster_client(cluster) as client:
        n_partitions = max(partition_count(history, claims_per_partition), 2 * worker_count(client))
        snapshots = build_snapshots_partitioned(
            history, as_of_dates, labels, data_end, n_partitions, client
        )
    if progress is not None:
        progress(len(as_of_dates))
    return snapshots
