"""Rescoring the open balances the server keeps: history -> snapshots -> model -> policy ->
worklist rows, every score recorded in the audit trail.

``rescore`` scores every open balance of the stored history as of one date with the loaded model,
asks the policy for each account's action (``serving.policy.recommend.recommend``), appends one
``score`` record per account to the audit chain (so an action can name the score it acted on) and
then replaces the stored worklist. ``ensure_fresh`` rescores when the history, the model or the
policy changed since the last rescore, or the day did: the worklist route calls it, so a new
``POST /v1/history``, a reloaded champion or a new day is reflected on the next read.

The history fingerprint is (claims, transactions, last transaction id): a send that only
changes fields of claims already stored is not detected; ``arscore rescore`` picks it up.
``decide_rows`` and ``priority_cents`` are pure, shared with ``bench/bench_worklist_replay.py``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Engine

from features.history import History
from features.model import CollectibilityModel
from features.money import cents, cents_to_dollars
from features.snapshots import build_snapshots
from serving.access.keys import Principal
from serving.audit.records import AuditEntry
from serving.audit.store import AuditStore
from serving.history.store import HistoryStore
from serving.history.tables import history_claims, history_transactions
from serving.policy.config import Policy
from serving.policy.decide import Recommendation
from serving.policy.facts import OPTIONAL_POLICY_COLUMNS, REQUIRED_COLUMNS
from serving.policy.recommend import recommend
from serving.scoring.loader import LoadedModel
from serving.scoring.reasons import ReasonTexts
from serving.scoring.risk_bands import risk_band
from serving.worklist.store import WorklistRow, WorklistState, WorklistStore

logger = logging.getLogger(__name__)

SCORE_KIND = "score"
AUDIT_CHUNK_ROWS = 5_000
_rescore_lock = threading.Lock()


@dataclass(frozen=True)
class RescoreResult:
    """What a rescore did."""

    as_of: date
    n_accounts: int
    n_on_hold: int
    model_version: str
    policy_version: str
    trigger: str


def priority_cents(recommendation: Recommendation, policy: Policy) -> tuple[int, float]:
    """(expected net recovery per touch in cents, touches) of a recommendation; actions that
    recover nothing (write-offs, holds, refund review, no score) rank at 0 with one touch."""
    touches = float(getattr(policy.touches_to_collect, recommendation.action, 1.0) or 1.0)
    net = recommendation.expected_net_recovery
    if net is None or net != net:
        return 0, touches
    return int(round(net / touches * 100)), touches


def decide_rows(
    snapshots: pd.DataFrame,
    model: CollectibilityModel,
    policy: Policy,
    with_reasons: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[Recommendation]]:
    """The model's probability and expected recovery of each snapshot row, and the policy's
    recommendation (quoting the model's reasons when asked)."""
    X = model.features(snapshots)
    probability = model.probability(X)
    recovery = model.expected_recovery(snapshots, X)
    model_reasons = None
    if with_reasons:
        texts = ReasonTexts(model)(snapshots, X)
        model_reasons = [[{"sentence": t} for t in row] for row in texts]
    rows = snapshots.assign(probability_collected=probability, expected_recovery=recovery)
    return probability, recovery, recommend(rows, policy, model_reasons)


def history_fingerprint(engine: Engine) -> str:
    """Claims, transactions and the last transaction id of the stored history."""
    with engine.connect() as connection:
        n_claims = connection.execute(
            sa.select(sa.func.count()).select_from(history_claims)
        ).scalar_one()
        n_tx, last_id = connection.execute(
            sa.select(sa.func.count(), sa.func.max(history_transactions.c.id))
        ).one()
    return f"{n_claims}:{n_tx}:{last_id or 0}"


def last_activity(history: History, as_of: pd.Timestamp) -> pd.DataFrame:
    """Each claim's last transaction (date and type) up to ``as_of``, indexed by claim_id."""
    tx = history.transactions
    tx = tx[(tx["date"] <= as_of).to_numpy(dtype=bool, na_value=False)]
    last = tx.sort_values(["claim_id", "date"], kind="stable").groupby("claim_id").tail(1)
    return last.set_index("claim_id")[["date", "type"]]


def _facts(snapshots: pd.DataFrame) -> list[dict[str, Any]]:
    """The policy's input columns of each row, as JSON-ready values."""
    wanted = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_POLICY_COLUMNS) if c in snapshots]
    frame = snapshots[[c for c in wanted if c not in ("probability_collected",)]]
    plain = frame.astype(object).where(frame.notna(), None)
    return plain.to_dict("records")


def _optional_int(value: Any) -> int | None:
    return None if value is None or value != value else int(value)


def worklist_rows(
    snapshots: pd.DataFrame,
    history: History,
    loaded: LoadedModel,
    policy: Policy,
    policy_version: str,
    risk_band_cuts: tuple[float, ...],
    scored_at: datetime,
    with_reasons: bool = True,
) -> list[WorklistRow]:
    """The worklist rows of scored snapshots (one as-of date), each with a new score_id."""
    probability, recovery, recommendations = decide_rows(
        snapshots, loaded.model, policy, with_reasons
    )
    bands = risk_band(probability, risk_band_cuts)
    as_of = pd.Timestamp(snapshots["as_of"].iloc[0])
    activity = last_activity(history, as_of)
    facts = _facts(snapshots.assign(expected_recovery=recovery))
    rows = []
    for i, (snap, rec) in enumerate(
        zip(snapshots.to_dict("records"), recommendations, strict=True)
    ):
        priority, touches = priority_cents(rec, policy)
        claim_id = str(snap["claim_id"])
        last = activity.loc[claim_id] if claim_id in activity.index else None
        rows.append(
            WorklistRow(
                claim_id=claim_id,
                as_of=as_of.date(),
                score_id=uuid.uuid4().hex,
                scored_at=scored_at,
                model_name=loaded.name,
                model_version=loaded.version,
                model_sha256=loaded.sha256,
                policy_version=policy_version,
                payer_id=str(snap["payer_id"]),
                payer_type=str(snap["payer_type"]),
                responsibility=str(snap["responsibility"]),
                open_balance_cents=int(cents(snap["open_balance"]) or 0),
                days_in_ar=_optional_int(snap.get("days_since_service")),
                aging_bucket=None
                if snap.get("aging_bucket") is None
                else str(snap["aging_bucket"]),
                last_activity_date=None if last is None else pd.Timestamp(last["date"]).date(),
                last_activity_type=None if last is None else str(last["type"]),
                probability_collected=float(probability[i]),
                expected_recovery_cents=cents(recovery[i]),
                risk_band=str(bands[i]),
                action=rec.action,
                expected_net_recovery_cents=cents(rec.expected_net_recovery),
                touches=touches,
                priority_cents=priority,
                on_hold=rec.action == "hold",
                reasons=[
                    {"source": r["source"], "rule_id": r["rule_id"], "sentence": r["sentence"]}
                    for r in rec.reasons
                ],
                facts=facts[i],
            )
        )
    return rows


def _audit_entry(
    row: WorklistRow, loaded: LoadedModel, trigger: str, requester: Principal | None
) -> AuditEntry:
    payload = {
        "as_of": row.as_of,
        "trigger": trigger,
        "model_alias": loaded.alias,
        "probability_collected": row.probability_collected,
        "expected_recovery": cents_to_dollars(row.expected_recovery_cents),
        "risk_band": row.risk_band,
        "action": row.action,
        "expected_net_recovery": cents_to_dollars(row.expected_net_recovery_cents),
        "priority_cents": row.priority_cents,
        "reasons": row.reasons,
    }
    return AuditEntry(
        kind=SCORE_KIND,
        requester_key_id=None if requester is None else requester.key_id,
        requester_role=None if requester is None else requester.role,
        requester_user=None if requester is None else requester.user,
        requester_system=None if requester is None else requester.system,
        model_name=row.model_name,
        model_version=row.model_version,
        model_sha256=row.model_sha256,
        policy_version=row.policy_version,
        claim_id=row.claim_id,
        payload=payload,
        score_id=row.score_id,
    )


def rescore(
    engine: Engine,
    audit: AuditStore,
    loaded: LoadedModel,
    policy: Policy,
    policy_version: str,
    as_of: date,
    *,
    risk_band_cuts: tuple[float, ...] = (0.2, 0.5, 0.8),
    with_reasons: bool = True,
    trigger: str = "rescore",
    requester: Principal | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RescoreResult:
    """Score every open balance of the stored history as of ``as_of``; audit; replace."""
    fingerprint = history_fingerprint(engine)
    history = HistoryStore(engine).load()
    stamp = pd.Timestamp(as_of)
    snapshots = pd.DataFrame()
    if len(history.claims):
        snapshots = build_snapshots(history, [stamp], labels=None, data_end=stamp)
    rows: list[WorklistRow] = []
    if len(snapshots):
        rows = worklist_rows(
            snapshots,
            history,
            loaded,
            policy,
            policy_version,
            risk_band_cuts,
            clock(),
            with_reasons,
        )
    for start in range(0, len(rows), AUDIT_CHUNK_ROWS):
        chunk = rows[start : start + AUDIT_CHUNK_ROWS]
        audit.append([_audit_entry(row, loaded, trigger, requester) for row in chunk])
    state = WorklistState(fingerprint, loaded.sha256, policy_version, as_of, clock(), len(rows))
    WorklistStore(engine).replace(rows, state)
    n_on_hold = sum(row.on_hold for row in rows)
    logger.info(
        "worklist rescored",
        extra={"accounts": len(rows), "on_hold": n_on_hold, "trigger": trigger},
    )
    return RescoreResult(as_of, len(rows), n_on_hold, loaded.version, policy_version, trigger)


def staleness(engine: Engine, loaded: LoadedModel, policy_version: str, as_of: date) -> str | None:
    """Why the stored worklist is out of date ("history", "model", ...), or None."""
    state = WorklistStore(engine).state()
    if state is None:
        return "first_rescore"
    if state.model_sha256 != loaded.sha256:
        return "model_changed"
    if state.policy_version != policy_version:
        return "policy_changed"
    if state.as_of != as_of:
        return "new_day"
    if state.history_fingerprint != history_fingerprint(engine):
        return "history_changed"
    return None


def ensure_fresh(
    engine: Engine,
    audit: AuditStore,
    loaded: LoadedModel,
    policy: Policy,
    policy_version: str,
    as_of: date,
    risk_band_cuts: tuple[float, ...],
) -> RescoreResult | None:
    """Rescore if the worklist is out of date (one rescore at a time in this process)."""
    if staleness(engine, loaded, policy_version, as_of) is None:
        return None
    with _rescore_lock:
        trigger = staleness(engine, loaded, policy_version, as_of)
        if trigger is None:
            return None
        return rescore(
            engine,
            audit,
            loaded,
            policy,
            policy_version,
            as_of,
            risk_band_cuts=risk_band_cuts,
            trigger=trigger,
        )
