"""GET /v1/audit/{score_id}: one audit record, for auditors (each read is itself audited)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status

from serving.api.deps import AuditDep, AuditorRole
from serving.api.schemas import AuditRecordOut
from serving.audit.records import AuditEntry

router = APIRouter(prefix="/v1/audit", tags=["audit"])
READ_KIND = "audit_read"


@router.get(
    "/{score_id}",
    response_model=AuditRecordOut,
    summary="Read the audit record of a score",
    responses={
        404: {"description": "no record with this score_id"},
        503: {"description": "the audit store is unavailable"},
    },
)
def read_audit_record(
    score_id: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
    principal: AuditorRole,
    audit: AuditDep,
) -> AuditRecordOut:
    """The record as stored (what the model saw, its numbers and reasons, who asked), with its
    place in the hash chain. The read is recorded as an ``audit_read`` entry."""
    record = audit.get(score_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no audit record with this score_id")
    audit.append(
        [
            AuditEntry(
                kind=READ_KIND,
                requester_key_id=principal.key_id,
                requester_role=principal.role,
                requester_user=principal.user,
                requester_system=principal.system,
                model_name=None,
                model_version=None,
                model_sha256=None,
                policy_version=None,
                claim_id=record.claim_id,
                payload={"read_score_id": record.score_id, "read_seq": record.seq},
            )
        ]
    )
    return AuditRecordOut(**asdict(record))
