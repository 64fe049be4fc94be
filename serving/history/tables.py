"""The server's history tables (created by the migrations), their frame columns, the errors both
of the history modules raise, and the chunking of long ``IN (...)`` lists.

Money is stored in integer cents (a money column ``x`` of the interchange format is ``x_cents``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from features.errors import ArscoreError
from features.schema import CLAIM_COLUMNS, TRANSACTION_COLUMNS, Column

IN_CHUNK = 500  # values per IN (...) list, well below SQLite's bound-parameter limit


CLAIM_FRAME_COLUMNS = tuple(c for c in CLAIM_COLUMNS if c.name != "patient_id") + (
    Column("patient_key", "string", True, "keyed pseudonym of the patient identifier"),
)


TRANSACTION_FRAME_COLUMNS = TRANSACTION_COLUMNS


def db_name(column: Column) -> str:
    return f"{column.name}_cents" if column.kind == "money" else column.name


_SQL_TYPES: dict[str, Any] = {
    "string": sa.String,
    "enum": sa.String,
    "date": sa.Date,
    "money": sa.BigInteger,
    "int": sa.Integer,
}


_metadata = sa.MetaData()


history_claims = sa.Table(
    "history_claims",
    _metadata,
    *(
        sa.Column(db_name(c), _SQL_TYPES[c.kind], primary_key=c.name == "claim_id")
        for c in CLAIM_FRAME_COLUMNS
    ),
)


CLAIM_NAMES = tuple(c.name for c in history_claims.columns)


history_transactions = sa.Table(
    "history_transactions",
    _metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("identity", sa.String(64)),
    *(sa.Column(db_name(c), _SQL_TYPES[c.kind]) for c in TRANSACTION_FRAME_COLUMNS),
)


class HistoryStoreError(ArscoreError):
    """Input the history store refuses; nothing was written."""


class HistoryStoreUnavailable(ArscoreError):
    """The history database failed; nothing was written (the app answers 503)."""


def chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
