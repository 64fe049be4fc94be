"""POST /v1/history: new claims and transactions from an RCM system, validated like files."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel

from features.errors import Problem, ValidationError
from features.history import MAX_ROWS_SHOWN, validate_history, validate_table
from features.schema import CLAIM_COLUMNS, TRANSACTION_COLUMNS, Column, column_names
from serving.api.deps import HistoryDep, PseudonymKeyDep, ScorerRole, SettingsDep
from serving.api.schemas import HistoryRequest, HistoryResponse
from serving.history.store import HistoryStore

router = APIRouter(prefix="/v1", tags=["history"])


def raw_frame(rows: list[BaseModel], columns: tuple[Column, ...]) -> pd.DataFrame:
    """Rows as a table of text, the way a CSV file is read (numbers become their text)."""
    names = column_names(columns)
    data = [
        [
            None if v is None else v if isinstance(v, str) else str(v)
            for v in row.model_dump().values()
        ]
        for row in rows
    ]
    return pd.DataFrame(data, columns=names, dtype="object")


def _unknown_claims(
    transactions: pd.DataFrame, sent: set[str], store: HistoryStore
) -> Problem | None:
    """Transactions whose claim is neither in this send nor stored earlier."""
    claim_ids = transactions["claim_id"]
    candidates = sorted({c for c in claim_ids.dropna().tolist() if c not in sent})
    stored = set(store.load(claim_ids=candidates).claims["claim_id"]) if candidates else set()
    known = sent | stored
    unknown = (claim_ids.notna() & ~claim_ids.isin(known)).to_numpy(dtype=bool)
    positions = np.flatnonzero(unknown)
    if not positions.size:
        return None
    return Problem(
        "transactions",
        "claim_id",
        "a claim_id sent in claims or stored earlier",
        tuple(int(p) + 1 for p in positions[:MAX_ROWS_SHOWN]),
        int(positions.size),
    )


def validated(body: HistoryRequest, key: bytes, store: HistoryStore) -> tuple[Any, pd.DataFrame]:
    """Validated claims (pseudonymized) and transactions; ValidationError lists every problem.

    As ``validate_history`` does for files, except that a transaction may belong to a claim
    stored by an earlier send."""
    raw_claims = raw_frame(body.claims, CLAIM_COLUMNS)
    raw_transactions = raw_frame(body.transactions, TRANSACTION_COLUMNS)
    problems: list[Problem] = []
    history = None
    try:
        history = validate_history(raw_claims, raw_transactions.iloc[:0], key)
    except ValidationError as error:
        problems += error.problems
    transactions, found = validate_table(raw_transactions, TRANSACTION_COLUMNS, "transactions")
    problems += found
    if not problems and history is not None:
        sent = set(history.claims["claim_id"].dropna().tolist())
        unknown = _unknown_claims(transactions, sent, store)
        problems += [unknown] if unknown is not None else []
    if problems:
        raise ValidationError(problems)
    assert history is not None
    return history.claims, transactions


@router.post(
    "/history",
    response_model=HistoryResponse,
    summary="Send new claims and transactions",
    responses={
        401: {"description": "no or invalid API key"},
        403: {"description": "the key's role may not send history"},
        413: {"description": "more rows than max_history_rows"},
        422: {"description": "problems, each with table, column, 1-based rows and expectation"},
        503: {"description": "the history store is unavailable; nothing was written"},
    },
)
def send_history(
    principal: ScorerRole,
    body: HistoryRequest,
    store: HistoryDep,
    key: PseudonymKeyDep,
    settings: SettingsDep,
) -> HistoryResponse:
    """Store claims and transactions idempotently: re-sending the same rows changes nothing,
    a claim sent again with other values is updated. All or nothing."""
    n_rows = len(body.claims) + len(body.transactions)
    if n_rows > settings.max_history_rows:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"{n_rows} rows in one send; at most {settings.max_history_rows} are allowed",
        )
    claims, transactions = validated(body, key, store)
    result = store.upsert(claims, transactions)
    return HistoryResponse(**vars(result))
