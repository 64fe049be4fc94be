"""The synthetic generator's run: claims block by block, their events, one pair of frames.

``generate_history(GeneratorConfig(...))`` returns ``(claims, transactions)``; the same config
gives the same frames, whatever the progress chunking. Randomness comes in blocks of
``CLAIMS_PER_BLOCK`` claims, block ``b`` drawing from ``SeedSequence(seed, spawn_key=(1, b))``
and the patient pool from ``spawn_key=(0,)``; nothing reads the wall clock. Claim ids are
numbered in billing order.
"""

from __future__ import annotations

import datetime
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from features.schema import (
    CLAIM_COLUMNS,
    CLAIMS_FILE_STEM,
    TRANSACTION_COLUMNS,
    TRANSACTIONS_FILE_STEM,
    column_names,
)
from training.synthetic.claims import (
    DAYS_PER_MONTH,
    ClaimBlock,
    Patients,
    Window,
    make_claims,
    make_patients,
)
from training.synthetic.config import GeneratorConfig
from training.synthetic.events import EventLog, adjudicate
from training.synthetic.patients import collect_patient_balances

CLAIMS_PER_BLOCK = 1_000  # the unit of randomness: results never depend on progress chunks
_PATIENT_STREAM, _CLAIM_STREAM = 0, 1
_EPOCH = datetime.date(1970, 1, 1)


def history_window(config: GeneratorConfig) -> Window:
    """The days (since 1970-01-01) of service dates: ``months`` back from end_date."""
    end_day = (config.end_date - _EPOCH).days
    return Window(end_day - round(config.months * DAYS_PER_MONTH), end_day)


def generate_history(
    config: GeneratorConfig, progress: Callable[[int], None] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (claims, transactions) frames in the interchange format."""
    window = history_window(config)
    patients = make_patients(config, _rng(config.seed, _PATIENT_STREAM), window)
    n_blocks = math.ceil(config.n_claims / CLAIMS_PER_BLOCK)
    blocks: list[tuple[ClaimBlock, dict[str, np.ndarray]]] = []
    for chunk in np.array_split(np.arange(n_blocks), min(config.progress_chunks, n_blocks)):
        blocks += [_generate_block(config, patients, window, int(block)) for block in chunk]
        if progress is not None:
            progress(min(int(chunk[-1] + 1) * CLAIMS_PER_BLOCK, config.n_claims))
    return _assemble([claims for claims, _ in blocks], [events for _, events in blocks])


def _rng(seed: int, *stream: int) -> np.random.Generator:
    """The generator of one stream of randomness, independent of every other stream."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=stream))


def _generate_block(
    config: GeneratorConfig, patients: Patients, window: Window, block: int
) -> tuple[ClaimBlock, dict[str, np.ndarray]]:
    """Claims of one block and their events up to end_date."""
    rng = _rng(config.seed, _CLAIM_STREAM, block)
    start = block * CLAIMS_PER_BLOCK
    claim_number = np.arange(start, min(start + CLAIMS_PER_BLOCK, config.n_claims))
    claims = make_claims(claim_number, patients, config, rng, window)
    log = EventLog()
    balances = adjudicate(claims, config, rng, log)
    collect_patient_balances(balances, config, rng, log)
    events = log.arrays()
    observed = events["day"] <= window.end_day
    return claims, {name: values[observed] for name, values in events.items()}


def _assemble(
    blocks: list[ClaimBlock], event_blocks: list[dict[str, np.ndarray]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One claims and one transactions frame; claim ids follow billing order."""
    claims = {
        f.name: np.concatenate([getattr(b, f.name) for b in blocks]) for f in fields(ClaimBlock)
    }
    events = {name: np.concatenate([e[name] for e in event_blocks]) for name in event_blocks[0]}
    order = np.lexsort((claims["claim_number"], claims["service_day"], claims["billed_day"]))
    rank = np.empty(len(order), dtype=np.int64)
    rank[claims["claim_number"][order]] = np.arange(len(order))
    claim_ids = _identifiers("C", 7, len(order))
    claims_frame = _claims_frame(
        {name: values[order] for name, values in claims.items()}, claim_ids
    )
    event_rank = rank[events["claim"]]
    event_order = np.lexsort((np.arange(len(event_rank)), event_rank, events["day"]))
    events = {name: values[event_order] for name, values in events.items()}
    return claims_frame, _transactions_frame(events, claim_ids[event_rank[event_order]])


def _identifiers(prefix: str, width: int, n: int) -> np.ndarray:
    """``prefix`` followed by 1..n zero-padded to ``width`` digits (more when n needs it)."""
    digits = pd.Series(np.arange(1, n + 1)).astype(str).str.zfill(width)
    return (prefix + digits).to_numpy(dtype=object)


def _dates(days: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 as midnight datetime64[ns]."""
    return days.astype("datetime64[D]").astype("datetime64[ns]")


def _strings(values: np.ndarray) -> pd.arrays.StringArray:
    """Text values as pandas string dtype, None as missing."""
    return pd.array(values, dtype="string")


def _claims_frame(claims: dict[str, np.ndarray], claim_ids: np.ndarray) -> pd.DataFrame:
    """The claims table in schema column order."""
    n_patients = int(claims["patient"].max()) + 1
    age = claims["reported_age"]
    frame = pd.DataFrame(
        {
            "claim_id": _strings(claim_ids),
            "patient_id": _strings(_identifiers("P", 6, n_patients)[claims["patient"]]),
            "payer_id": _strings(claims["payer_id"]),
            "payer_type": _strings(claims["payer_type"]),
            "claim_type": _strings(claims["claim_type"]),
            "place_of_service": _strings(claims["place_of_service"]),
            "service_date": _dates(claims["service_day"]),
            "billed_date": _dates(claims["billed_day"]),
            "total_charge": claims["total_charge"],
            "expected_amount": claims["expected_amount"],
            "patient_age": pd.arrays.IntegerArray(
                np.nan_to_num(age).astype(np.int64), np.isnan(age)
            ),
            "patient_state": _strings(claims["state"]),
            "patient_zip3": _strings(claims["zip3"]),
        }
    )
    return frame[column_names(CLAIM_COLUMNS)]


def _transactions_frame(events: dict[str, np.ndarray], claim_ids: np.ndarray) -> pd.DataFrame:
    """The transactions table in schema column order, sorted by (date, claim_id)."""
    frame = pd.DataFrame(
        {
            "claim_id": _strings(claim_ids),
            "date": _dates(events["day"]),
            "type": _strings(events["type"]),
            "amount": np.round(events["amount"], 2),
            **{
                name: _strings(events[name])
                for name in ("party", "carc_group", "carc_code", "rarc_code", "reason")
            },
        }
    )
    return frame[column_names(TRANSACTION_COLUMNS)]


def write_history(
    claims: pd.DataFrame,
    transactions: pd.DataFrame,
    out_dir: Path,
    fmt: Literal["csv", "parquet"],
) -> tuple[Path, Path]:
    """Write ``claims.<fmt>`` and ``transactions.<fmt>`` atomically; return their paths.

    CSV has ISO dates (YYYY-MM-DD) and money with 2 decimals; missing values are empty.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"unknown history format {fmt!r}: expected 'csv' or 'parquet'")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    claims_path = out_dir / f"{CLAIMS_FILE_STEM}.{fmt}"
    transactions_path = out_dir / f"{TRANSACTIONS_FILE_STEM}.{fmt}"
    _write_atomically(claims, claims_path, fmt)
    _write_atomically(transactions, transactions_path, fmt)
    return claims_path, transactions_path


def _write_atomically(frame: pd.DataFrame, path: Path, fmt: Literal["csv", "parquet"]) -> None:
    """Write to a temporary file next to ``path``, then rename it over ``path``."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        if fmt == "csv":
            frame.to_csv(temporary, index=False, date_format="%Y-%m-%d", float_format="%.2f")
        else:
            frame.to_parquet(temporary, index=False)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
