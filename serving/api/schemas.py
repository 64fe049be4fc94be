"""Request and response bodies of the HTTP API (pydantic v2).

Requests forbid unknown fields and use the column names of the interchange format
(``features.schema``); ``tests/serving/api/test_schemas.py`` keeps the two in step. Money arrives as
a JSON number or string and is kept as ``Decimal``; dates are ISO ``YYYY-MM-DD`` strings. The
raw ``patient_id`` is accepted only to be pseudonymized at once: it is excluded from every
``repr`` and never appears in a response, a log line or the audit trail.

JSON bodies are parsed mostly in Rust: ``JsonFastPath`` lets pydantic-core handle the usual
values of the fields with Python rules (ISO dates, blank optionals), and hands only the rest
(and all Python input) to those rules, which alone decide what else is accepted.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, get_type_hints

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    WithJsonSchema,
    create_model,
    model_validator,
)
from pydantic_core import CoreSchema, core_schema

from features.schema import (
    CARC_GROUPS,
    CLAIM_COLUMNS,
    CLAIM_TYPES,
    MAX_AMOUNT,
    PARTIES,
    PAYER_TYPES,
    TRANSACTION_COLUMNS,
    TRANSACTION_REASONS,
    TRANSACTION_TYPES,
    Column,
)
from serving.api.json_pydantic_core import (
    JSON_ISO_DATE,
    JSON_MISSING,
    JSON_NUMBER,
    JSON_TEXT,
    JsonFastPath,
)
from serving.audit.records import AuditRecord

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ISO_DATE_EXPECTED = "expected an ISO date YYYY-MM-DD"
MAX_TRANSACTIONS_PER_ITEM = 1_000
MAX_TEXT_LENGTH = 64


def _meaning(name: str, columns: tuple[Column, ...] = CLAIM_COLUMNS) -> str:
    return next(c.meaning for c in columns if c.name == name)


def _tx_meaning(name: str) -> str:
    return _meaning(name, TRANSACTION_COLUMNS)


def _iso_date(value: Any) -> Any:
    """Only ISO dates: a string ``YYYY-MM-DD`` (or a date object from Python callers)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and ISO_DATE.match(value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(ISO_DATE_EXPECTED)


def _blank_to_none(value: Any) -> Any:
    """As in files: an empty or blank optional value is missing."""
    if isinstance(value, str) and not value.strip():
        return None
    return value.strip() if isinstance(value, str) else value


def _blank_to_none_in_rust(*fast: CoreSchema) -> JsonFastPath:
    """``_blank_to_none``, with ``fast``, a stripped string and null or blank as None in Rust."""
    return JsonFastPath(_blank_to_none, (*fast, JSON_TEXT, *JSON_MISSING))


def _optional_level(levels: tuple[str, ...]) -> Any:
    """One of ``levels``, stripped, or None when missing or blank."""
    exact = core_schema.literal_schema(list(levels))
    return Annotated[Literal[levels] | None, _blank_to_none_in_rust(exact)]  # type: ignore[valid-type]


IsoDate = Annotated[
    dt.date,
    JsonFastPath(_iso_date, (JSON_ISO_DATE,), refusal=ISO_DATE_EXPECTED),
    WithJsonSchema({"type": "string", "format": "date", "example": "2025-03-31"}),
]
Text = Annotated[
    StrictStr, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_LENGTH)
]
OptionalText = Annotated[Text | None, _blank_to_none_in_rust()]
Money = Annotated[
    Decimal,
    Field(ge=0, lt=MAX_AMOUNT, allow_inf_nan=False),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "exclusiveMaximum": MAX_AMOUNT},
                {"type": "string"},
            ],
            "example": 1250.0,
        }
    ),
]
OptionalMoney = Annotated[Money | None, _blank_to_none_in_rust(JSON_NUMBER)]
OutMoney = Annotated[
    Decimal,
    PlainSerializer(float, return_type=float, when_used="json"),
    WithJsonSchema({"type": "number", "example": 412.35}),
]


if TYPE_CHECKING:  # the levels come from features.schema at run time
    PayerType: TypeAlias = str
    ClaimType: TypeAlias = str
    TransactionType: TypeAlias = str
    OptionalParty: TypeAlias = str | None
    OptionalCarcGroup: TypeAlias = str | None
    OptionalReason: TypeAlias = str | None
else:
    PayerType = Literal[PAYER_TYPES]
    ClaimType = Literal[CLAIM_TYPES]
    TransactionType = Literal[TRANSACTION_TYPES]
    OptionalParty = _optional_level(PARTIES)
    OptionalCarcGroup = _optional_level(CARC_GROUPS)
    OptionalReason = _optional_level(TRANSACTION_REASONS)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClaimIn(_Request):
    """A claim in the interchange format (one row of ``claims``)."""

    claim_id: Text = Field(description=_meaning("claim_id"))
    patient_id: Text = Field(
        repr=False,
        description="patient/guarantor identifier: pseudonymized on arrival (keyed HMAC); "
        "never stored, logged or returned",
    )
    payer_id: Text = Field(description=_meaning("payer_id"))
    payer_type: PayerType = Field(description=_meaning("payer_type"))
    claim_type: ClaimType = Field(description=_meaning("claim_type"))
    place_of_service: Text = Field(description=_meaning("place_of_service"))
    service_date: IsoDate = Field(description=_meaning("service_date"))
    billed_date: IsoDate = Field(description=_meaning("billed_date"))
    total_charge: Money = Field(description=_meaning("total_charge"))
    expected_amount: OptionalMoney = Field(None, description=_meaning("expected_amount"))
    patient_age: Annotated[int | None, Field(ge=0)] = Field(
        None, description=_meaning("patient_age")
    )
    patient_state: OptionalText = Field(None, description=_meaning("patient_state"))
    patient_zip3: OptionalText = Field(None, description=_meaning("patient_zip3"))


class TransactionIn(_Request):
    """A transaction of the item's claim (one row of ``transactions``)."""

    claim_id: OptionalText = Field(
        None, description="the item's claim_id (may be left out inside a score item)"
    )
    date: IsoDate = Field(description=_tx_meaning("date"))
    type: TransactionType = Field(description=_tx_meaning("type"))
    amount: OptionalMoney = Field(None, description=_tx_meaning("amount"))
    party: OptionalParty = Field(None, description=_tx_meaning("party"))
    carc_group: OptionalCarcGroup = Field(None, description=_tx_meaning("carc_group"))
    carc_code: OptionalText = Field(None, description=_tx_meaning("carc_code"))
    rarc_code: OptionalText = Field(None, description=_tx_meaning("rarc_code"))
    reason: OptionalReason = Field(None, description=_tx_meaning("reason"))


class ScoreItem(ClaimIn):
    """One open balance to score: the claim, its transactions up to now, optionally its as-of."""

    transactions: list[TransactionIn] = Field(
        default_factory=list, max_length=MAX_TRANSACTIONS_PER_ITEM
    )
    as_of: IsoDate | None = Field(
        None, description="score as of this date (default: the request's as_of, else today)"
    )

    @model_validator(mode="after")
    def _transactions_are_this_claims(self) -> ScoreItem:
        for position, transaction in enumerate(self.transactions):
            if transaction.claim_id is not None and transaction.claim_id != self.claim_id:
                raise ValueError(
                    f"transactions[{position}].claim_id: expected this item's claim_id or nothing"
                )
        return self


class ScoreRequest(_Request):
    """1 to ``max_batch_items`` open balances (more: 413)."""

    items: list[ScoreItem] = Field(min_length=1)
    reasons: bool = Field(True, description="explain each score (TreeSHAP; costs CPU)")
    as_of: IsoDate | None = Field(None, description="default as-of date of the items (today)")


class ReasonOut(BaseModel):
    """A feature that moved the score, as a person reads it."""

    feature: str = Field(examples=["days_since_service"])
    value: str = Field(description="the value as shown to a person", examples=["143 days"])
    direction: Literal["raises", "lowers"] = Field(description="effect on collectibility")
    contribution: float = Field(description="TreeSHAP contribution to the raw log-odds")
    sentence: str = Field(
        examples=["balance is 143 days old (over 120 days lowers collectibility)"]
    )


class ModelRef(BaseModel):
    """Which model scored: registered name, version, and the alias it was resolved from."""

    name: str
    version: str
    alias: str | None = None


class RecommendationReasonOut(BaseModel):
    """Why the policy recommends an action: a rule (id + sentence) or the model's reasons."""

    source: Literal["rule", "model"]
    rule_id: str | None = None
    sentence: str


class RecommendationOut(BaseModel):
    """The next action the decision policy recommends for the balance, and why."""

    action: str = Field(examples=["payment_plan_offer"])
    reasons: list[RecommendationReasonOut]
    policy_version: str
    expected_net_recovery: OutMoney | None = Field(
        None, description="expected recovery less the cost of the touches the action takes"
    )


class ScoreOut(BaseModel):
    """The score of one open balance."""

    score_id: str = Field(description="finds the audit record: GET /v1/audit/{score_id}")
    claim_id: str
    as_of: dt.date
    probability_collected: float = Field(
        description="calibrated probability that at least half the collectible balance is "
        "recovered within the label horizon (90 days by default)"
    )
    expected_recovery: OutMoney = Field(
        description="expected dollars recovered within the horizon, rounded to the cent"
    )
    risk_band: str = Field(
        description="collectibility band of the probability, lowest to highest: very_low, "
        "low, medium, high (cut points: settings.risk_band_cuts, default 0.2/0.5/0.8)"
    )
    reasons: list[ReasonOut] = Field(description="up to 4, largest |contribution| first")
    recommendation: RecommendationOut = Field(
        description="the next action under the decision policy (rules first, then the model)"
    )
    model: ModelRef


class ScoreResponse(BaseModel):
    """Scores in the order of the request's items."""

    scores: list[ScoreOut]


_Scalar = StrictStr | StrictInt | StrictFloat


def _row_model(name: str, columns: tuple[Column, ...], doc: str) -> type[BaseModel]:
    fields: dict[str, Any] = {
        column.name: (
            _Scalar | None,
            Field(None, description=column.meaning, repr=column.name != "patient_id"),
        )
        for column in columns
    }
    return create_model(name, __config__=ConfigDict(extra="forbid"), __doc__=doc, **fields)


HistoryClaimRow = _row_model(
    "HistoryClaimRow", CLAIM_COLUMNS, "One claims row, validated like a file row."
)
HistoryTransactionRow = _row_model(
    "HistoryTransactionRow", TRANSACTION_COLUMNS, "One transactions row, validated like a file row."
)


class HistoryRequest(_Request):
    """New or updated claims and transactions from an RCM system, validated like files:
    problems name the table, the column and the 1-based row (position in the array)."""

    claims: list[HistoryClaimRow] = Field(default_factory=list)  # type: ignore[valid-type]
    transactions: list[HistoryTransactionRow] = Field(default_factory=list)  # type: ignore[valid-type]


class HistoryResponse(BaseModel):
    """What the history store changed (re-sending the same rows changes nothing)."""

    claims_new: int
    claims_updated: int
    transactions_new: int
    transactions_duplicate: int


class ProblemOut(BaseModel):
    """One validation problem of a history send."""

    source: str
    column: str
    expected: str
    rows: list[int] = Field(description="1-based positions in the array (first few)")
    n_rows: int


class ModelInfo(BaseModel):
    """The model the server scores with."""

    name: str
    version: str
    alias: str | None
    uri: str
    artifact_sha256: str
    feature_set_version: str
    loaded_at: dt.datetime
    feature_names: list[str]


class ReloadResponse(BaseModel):
    """The model before and after a reload."""

    changed: bool
    previous: ModelInfo
    current: ModelInfo


AuditRecordOut = create_model(
    "AuditRecordOut",
    __doc__="One record of the hash-chained audit trail (the fields of ``AuditRecord``).",
    **{name: (kind, ...) for name, kind in get_type_hints(AuditRecord).items()},
)


class Readiness(BaseModel):
    """Whether the server can score: a model is loaded and the audit store takes writes."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, bool]


OPENAPI_REF = "#/components/schemas/{model}"


def json_body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI requestBody of a route that reads and validates its JSON body itself
    (``serving.api.deps.parse_json_body``); ``openapi_components`` supplies the schemas."""
    reference = {"$ref": OPENAPI_REF.format(model=model.__name__)}
    return {"required": True, "content": {"application/json": {"schema": reference}}}


def openapi_components(*models: type[BaseModel]) -> dict[str, Any]:
    """Component schemas of models (and the models they contain) for the OpenAPI document."""
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=OPENAPI_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas
