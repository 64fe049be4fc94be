"""GET /v1/models/current and POST /v1/models/reload (admin)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request, status

from serving.api.deps import AdminRole, AuditDep, PrincipalDep, ScorerDep, SettingsDep
from serving.api.model_sync import install, load_configured, publish
from serving.api.schemas import ModelInfo, ReloadResponse
from serving.audit.records import AuditEntry
from serving.scoring.claim_scorer import ClaimScorer
from serving.scoring.loader import LoadedModel, ModelLoadError

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/models", tags=["models"])
RELOAD_KIND = "model_reload"


def model_info(loaded: LoadedModel) -> ModelInfo:
    """What the API tells about a loaded model."""
    return ModelInfo(
        name=loaded.name,
        version=loaded.version,
        alias=loaded.alias,
        uri=loaded.uri,
        artifact_sha256=loaded.sha256,
        feature_set_version=loaded.feature_set_version,
        loaded_at=loaded.loaded_at,
        feature_names=list(loaded.model.pipeline.feature_names_),
    )


@router.get("/current", response_model=ModelInfo, summary="The model in use")
def current_model(principal: PrincipalDep, scorer: ScorerDep) -> ModelInfo:
    """Name, version, the alias it was resolved from, artifact SHA-256, feature set."""
    return model_info(scorer.loaded)


@router.post(
    "/reload",
    response_model=ReloadResponse,
    summary="Switch to the model the registry alias points at now",
    responses={
        409: {"description": "the new model cannot be served; the current one stays"},
        503: {"description": "the audit store is unavailable; the current model stays"},
    },
)
def reload_model(
    request: Request,
    principal: AdminRole,
    settings: SettingsDep,
    audit: AuditDep,
) -> ReloadResponse:
    """Load the model ``model_uri`` names (e.g. the newly promoted champion) completely, record
    the switch in the audit trail, then swap one reference: requests in flight finish with the
    model they started with, later ones use the new model. Nothing is dropped. The other worker
    processes follow within ``model_sync_seconds`` (``serving.api.model_sync``)."""
    state = request.app.state
    with state.reload_lock:
        previous: ClaimScorer = state.scorer
        try:
            loaded = load_configured(settings)
        except ModelLoadError as error:
            logger.error("model reload refused", extra={"reason": str(error)})
            raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
        before, after = previous.loaded, loaded
        audit.append(
            [
                AuditEntry(
                    kind=RELOAD_KIND,
                    requester_key_id=principal.key_id,
                    requester_role=principal.role,
                    requester_user=principal.user,
                    requester_system=principal.system,
                    model_name=after.name,
                    model_version=after.version,
                    model_sha256=after.sha256,
                    policy_version=state.policy_version,
                    claim_id=None,
                    payload={
                        "uri": after.uri,
                        "alias": after.alias,
                        "from_version": before.version,
                        "from_sha256": before.sha256,
                    },
                )
            ]
        )
        install(state, after, settings)
        state.model_generation = publish(audit.engine, after)
    logger.info(
        "model reloaded",
        extra={"from_version": before.version, "to_version": after.version, "sha256": after.sha256},
    )
    return ReloadResponse(
        changed=before.sha256 != after.sha256,
        previous=model_info(before),
        current=model_info(after),
    )
