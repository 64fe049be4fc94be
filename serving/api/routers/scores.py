"""POST /v1/scores: score 1 to N open balances, audit every score before answering."""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Response, status

from features.pseudonym import pseudonymize_one
from serving.access.keys import Principal
from serving.api.deps import (
    AuditDep,
    HistoryDep,
    MetricsDep,
    PolicyDep,
    PolicyVersionDep,
    PseudonymKeyDep,
    RawBody,
    ScorerDep,
    ScorerRole,
    SettingsDep,
    TodayDep,
    parse_json_body,
    refuse_too_many,
)
from serving.api.schemas import (
    ScoreItem,
    ScoreRequest,
    ScoreResponse,
    json_body_schema,
)
from serving.api.score_request_msgspec import FastScoreItem, FastScoreRequest, decode_score_request
from serving.audit.records import AuditEntry, AuditUnavailable
from serving.history.ledger import other_claims_totals
from serving.policy.config import Policy
from serving.policy.decide import Recommendation
from serving.policy.recommend import recommend_rows
from serving.scoring.claim_scorer import NotScorable, ScoredClaim, ScoreInput, ScoringTimings
from serving.scoring.loader import LoadedModel
from serving.scoring.records import ClaimRecord, EventRecord

router = APIRouter(prefix="/v1", tags=["scores"])
SCORE_KIND = "score"
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or invalid API key"},
    403: {"description": "the key's role may not score"},
    413: {"description": "more items than max_batch_items, or a body above max_request_bytes"},
    422: {"description": "invalid items: every bad field with its path and what was expected"},
    503: {"description": "the audit or history store is unavailable; nothing was scored"},
}


def parse_score_request(raw: bytes, max_items: int) -> ScoreRequest | FastScoreRequest:
    """The body: decoded by msgspec if it lies in the canonical subset
    (``serving.api.score_request_msgspec``), else validated by ``ScoreRequest``; 413 or 422 as
    ``parse_json_body``."""
    fast = decode_score_request(raw)
    if fast is None:
        return parse_json_body(raw, ScoreRequest, max_items)
    refuse_too_many(len(fast.items), max_items)
    return fast


def claim_record(item: ScoreItem | FastScoreItem, patient_key: str) -> ClaimRecord:
    """The item's claim for the model path: patient pseudonymized, money as float. Fields are
    passed by position, in ``ClaimRecord``'s order (keywords cost a third more per record)."""
    expected = item.expected_amount
    return ClaimRecord(
        item.claim_id,
        patient_key,
        item.payer_id,
        item.payer_type,
        item.claim_type,
        item.place_of_service,
        item.service_date,
        item.billed_date,
        float(item.total_charge),
        None if expected is None else float(expected),
        item.patient_age,
        item.patient_state,
        item.patient_zip3,
    )


def event_records(item: ScoreItem | FastScoreItem) -> tuple[EventRecord, ...]:
    """The item's transactions, in the order sent; by position, in ``EventRecord``'s order."""
    claim_id = item.claim_id
    return tuple(
        EventRecord(
            claim_id,
            t.date,
            t.type,
            None if t.amount is None else float(t.amount),
            t.party,
            t.carc_group,
            t.carc_code,
            t.rarc_code,
            t.reason,
        )
        for t in item.transactions
    )


def score_inputs(body: ScoreRequest | FastScoreRequest, key: bytes, today: Any) -> list[ScoreInput]:
    """Items as scorer inputs, each patient pseudonymized once; the as-of date defaults to the
    request's, then today."""
    default_as_of = body.as_of or today
    patient_keys: dict[str, str] = {}
    inputs = []
    for item in body.items:
        patient_key = patient_keys.get(item.patient_id)
        if patient_key is None:
            patient_key = patient_keys[item.patient_id] = pseudonymize_one(item.patient_id, key)
        claim = claim_record(item, patient_key)
        inputs.append(ScoreInput(claim, event_records(item), item.as_of or default_as_of))
    return inputs


def recommendations(scored: list[ScoredClaim], policy: Policy) -> list[Recommendation]:
    """The decision policy on each scored snapshot: rules first, then the model's numbers."""
    records = [
        {
            **s.snapshot,
            "probability_collected": s.probability,
            "expected_recovery": float(s.expected_recovery),
        }
        for s in scored
    ]
    model_reasons = [[vars(r) for r in s.reasons] for s in scored]
    return recommend_rows(records, policy, model_reasons)


def recommendation_payload(recommendation: Recommendation) -> dict[str, Any]:
    """What the response and the audit record keep of a recommendation."""
    net = recommendation.expected_net_recovery
    return {
        "action": recommendation.action,
        "reasons": [dict(r) for r in recommendation.reasons],
        "policy_version": recommendation.policy_version,
        "expected_net_recovery": None if net is None else round(float(net), 2),
    }


def audit_entry(
    scored: ScoredClaim,
    recommendation: dict[str, Any],
    principal: Principal,
    loaded: LoadedModel,
    policy_version: str,
) -> AuditEntry:
    """What the audit trail keeps of one score: minimum necessary, patient as its pseudonym."""
    payload: dict[str, Any] = {
        "as_of": scored.as_of,
        "patient_key": scored.patient_key,
        "model_alias": loaded.alias,
        "features": scored.features,
        "probability_collected": scored.probability,
        "expected_recovery": scored.expected_recovery,
        "risk_band": scored.risk_band,
        "reasons": [vars(r) for r in scored.reasons],
        "recommendation": recommendation,
    }
    if scored.contributions is not None:
        payload["contributions"] = dict(
            zip([*scored.features, "bias"], scored.contributions, strict=True)
        )
    return AuditEntry(
        kind=SCORE_KIND,
        requester_key_id=principal.key_id,
        requester_role=principal.role,
        requester_user=principal.user,
        requester_system=principal.system,
        model_name=loaded.name,
        model_version=loaded.version,
        model_sha256=loaded.sha256,
        policy_version=policy_version,
        claim_id=scored.claim_id,
        payload=payload,
    )


def score_json(
    scored: ScoredClaim, recommendation: dict[str, Any], score_id: str, model: dict[str, Any]
) -> dict[str, Any]:
    """The response item of one score, as JSON-ready values in the shape of ``ScoreOut``
    (``tests/serving/api/test_app_scores.py`` validates the answer against the model). A 1,000-claim
    answer is written by orjson: building and serializing 1,000 ``ScoreOut`` cost as much as
    scoring them."""
    return {
        "score_id": score_id,
        "claim_id": scored.claim_id,
        "as_of": scored.as_of,
        "probability_collected": scored.probability,
        "expected_recovery": float(scored.expected_recovery),
        "risk_band": scored.risk_band,
        "reasons": [vars(r) for r in scored.reasons],
        "recommendation": recommendation,
        "model": model,
    }


def not_scorable(error: NotScorable) -> HTTPException:
    """422 naming each item that has nothing to score."""
    detail = [
        {"loc": ["body", "items", position], "msg": f"expected {what}", "type": "not_scorable"}
        for position, what in error.problems
    ]
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


@router.post(
    "/scores",
    response_model=ScoreResponse,
    summary="Score open balances",
    responses=ERRORS,
    openapi_extra={"requestBody": json_body_schema(ScoreRequest)},
)
def create_scores(
    principal: ScorerRole,
    raw: RawBody,
    settings: SettingsDep,
    scorer: ScorerDep,
    audit: AuditDep,
    history: HistoryDep,
    metrics: MetricsDep,
    key: PseudonymKeyDep,
    policy_version: PolicyVersionDep,
    policy: PolicyDep,
    today: TodayDep,
) -> Response:
    """Probability of collection, expected dollars, risk band and up to 4 reasons per balance.

    Each balance is scored on its own claim and transactions plus what the patient's other
    claims, sent earlier through ``POST /v1/history``, add as of its date. Every score is
    recorded in the audit trail before the response is sent, all of a request's records in one
    transaction (which may also hold other requests' records: group commit); ``score_id`` finds
    the record."""
    timings = ScoringTimings()
    started = time.perf_counter()
    body = parse_score_request(raw, settings.max_batch_items)
    started = timings.add("parse", started)
    inputs = score_inputs(body, key, today)
    started = timings.add("inputs", started)
    others = other_claims_totals(
        history.engine, [(i.claim.patient_key, i.claim.claim_id, i.as_of) for i in inputs]
    )
    timings.add("history", started)
    try:
        scored = scorer.score(inputs, others, body.reasons, timings)
    except NotScorable as error:
        raise not_scorable(error) from None
    loaded = scorer.loaded
    started = time.perf_counter()
    decided = [recommendation_payload(r) for r in recommendations(scored, policy)]
    timings.add("policy", started)
    started = time.perf_counter()
    entries = [
        audit_entry(s, d, principal, loaded, policy_version)
        for s, d in zip(scored, decided, strict=True)
    ]
    try:
        score_ids = audit.append_ids(entries)
    except AuditUnavailable:
        metrics.audit_unavailable.inc()
        raise
    timings.add("audit", started)
    metrics.observe_stages(timings.seconds)
    metrics.count_scores(s.risk_band for s in scored)
    model = {"name": loaded.name, "version": loaded.version, "alias": loaded.alias}
    scores = [
        score_json(s, d, i, model) for s, d, i in zip(scored, decided, score_ids, strict=True)
    ]
    return Response(orjson.dumps({"scores": scores}), media_type="application/json")
