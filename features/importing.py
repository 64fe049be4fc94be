"""What the importers of X12 and FHIR share: warnings, the patient events merge, column helpers.

An importer turns a billing system's export into the interchange format's two tables; the
billing system's own events (statements, patient payments, plans, financial assistance,
disputes, appeals, write-offs), which no 835 or ExplanationOfBenefit carries, come as an
interchange-format transactions table and are merged in by ``merge_patient_events``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from features.errors import Problem, ValidationError
from features.history import validate_table
from features.schema import TRANSACTION_COLUMNS, column_names

WARNING_COLUMNS = ("kind", "where", "claim_id", "message")


@dataclass(frozen=True)
class ImportWarning:
    """Something kept but worth a look: a count that does not match, a claim that does not
    balance. ``kind`` groups warnings in the summary; ``claim_id`` is only for the warnings
    file, never part of the message."""

    kind: str
    location: object
    message: str
    claim_id: str | None = None

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


def warnings_frame(warnings: Sequence[ImportWarning]) -> pd.DataFrame:
    """The warnings as a table (kind, where, claim_id, message) for ``import_warnings.csv``."""
    return pd.DataFrame(
        {
            "kind": text_column([w.kind for w in warnings]),
            "where": text_column([str(w.location) for w in warnings]),
            "claim_id": text_column([w.claim_id for w in warnings]),
            "message": text_column([w.message for w in warnings]),
        },
        columns=list(WARNING_COLUMNS),
    )


def merge_patient_events(
    claims: pd.DataFrame, transactions: pd.DataFrame, raw_events: pd.DataFrame, source: str
) -> pd.DataFrame:
    """The imported transactions with the events table merged in, sorted by date (stable).

    The events are validated as a transactions table of the interchange format; an event of a
    claim the import does not hold is an error naming the file and its rows.
    """
    events, problems = validate_table(raw_events, TRANSACTION_COLUMNS, source)
    if not problems:
        unknown = ~events["claim_id"].isin(claims["claim_id"]).to_numpy()
        rows = np.flatnonzero(unknown)
        if rows.size:
            shown = tuple(int(r) + 1 for r in rows[:5])
            expected = "a claim_id of a claim in the imported 837/835 or ExplanationOfBenefit files"
            problems.append(Problem(source, "claim_id", expected, shown, int(rows.size)))
    if problems:
        raise ValidationError(problems)
    names = column_names(TRANSACTION_COLUMNS)
    merged = pd.concat([transactions[names], events[names]], ignore_index=True)
    return merged.sort_values("date", kind="stable", ignore_index=True)


def text_column(values: Sequence[str | None]) -> pd.Series:
    """Texts (None as missing) as a pandas string column, through Arrow (3x pandas' own)."""
    return pd.Series(pd.array(pa.array(list(values), type=pa.string()), dtype="string"))


def dates_of(values: pd.Series | Sequence[str | None], fmt: str = "%Y%m%d") -> pd.Series:
    """Date texts as datetime64 (each distinct text converted once); missing stays NaT."""
    series = pd.Series(values, dtype="object")
    factor, uniques = pd.factorize(series)
    converted = pd.to_datetime(pd.Index(uniques, dtype=object), format=fmt)
    out = np.full(len(series), np.datetime64("NaT"), dtype="datetime64[ns]")
    valid = factor >= 0
    out[valid] = converted.to_numpy(dtype="datetime64[ns]")[factor[valid]]
    return pd.Series(out, index=series.index)
