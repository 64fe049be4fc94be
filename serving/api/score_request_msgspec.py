"""The usual ``POST /v1/scores`` body, decoded by msgspec; pydantic decides everything else.

pydantic's parse of a 1,000-claim body (``ScoreRequest.model_validate_json``) took ~10 ms, as
long as predicting it. msgspec decodes the same body into the structs below in ~3.5 ms, but it
has none of the request schemas' rules (``serving.api.schemas``: stripped text, blank optionals as
missing, money as a number or a string). So the structs accept only a canonical subset of what
``ScoreRequest`` accepts, values those rules would pass through unchanged:

- text: 1 to 64 characters, starting and ending with a printable ASCII character other than a
  space (nothing any definition of whitespace would strip);
- money: a JSON number, >= 0 and < ``MAX_AMOUNT``, kept as the float the model path takes
  (``float(Decimal(repr(f)))`` is ``f``, and the bounds hold for one exactly when for the other);
- dates: ``YYYY-MM-DD``; levels: the exact level; optionals: the value, ``null`` or left out;
- integers: JSON integers; ``reasons``: ``true`` or ``false``; no unknown field.

Any body outside it (a blank value, a padded date, money as a string, any error at all) decodes
to None and goes to ``ScoreRequest``, which alone reports what is wrong. The fields and defaults
are ``ScoreRequest``'s (``tests/serving/api/test_score_request_msgspec.py`` keeps them in step
and checks that both give the same items on many bodies).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from features.schema import CARC_GROUPS, MAX_AMOUNT, PARTIES, TRANSACTION_REASONS
from serving.api.schemas import (
    MAX_TEXT_LENGTH,
    MAX_TRANSACTIONS_PER_ITEM,
    ClaimType,
    PayerType,
    TransactionType,
)

Text = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=MAX_TEXT_LENGTH, pattern=r"(?s)^[!-~](.*[!-~])?$"),
]
Money = Annotated[float, msgspec.Meta(ge=0, lt=MAX_AMOUNT)]
Party = Literal[PARTIES]  # type: ignore[valid-type]
CarcGroup = Literal[CARC_GROUPS]  # type: ignore[valid-type]
Reason = Literal[TRANSACTION_REASONS]  # type: ignore[valid-type]


class FastTransaction(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``TransactionIn`` in the canonical subset."""

    date: dt.date
    type: TransactionType
    claim_id: Text | None = None
    amount: Money | None = None
    party: Party | None = None
    carc_group: CarcGroup | None = None
    carc_code: Text | None = None
    rarc_code: Text | None = None
    reason: Reason | None = None


class FastScoreItem(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``ScoreItem`` in the canonical subset (money as float)."""

    claim_id: Text
    patient_id: Text
    payer_id: Text
    payer_type: PayerType
    claim_type: ClaimType
    place_of_service: Text
    service_date: dt.date
    billed_date: dt.date
    total_charge: Money
    expected_amount: Money | None = None
    patient_age: Annotated[int, msgspec.Meta(ge=0)] | None = None
    patient_state: Text | None = None
    patient_zip3: Text | None = None
    transactions: Annotated[
        list[FastTransaction], msgspec.Meta(max_length=MAX_TRANSACTIONS_PER_ITEM)
    ] = msgspec.field(default_factory=list)
    as_of: dt.date | None = None

    def __post_init__(self) -> None:
        """As ``ScoreItem``: a transaction's claim_id, if given, is the item's (the error only
        sends the body to ``ScoreRequest``, which reports it)."""
        for transaction in self.transactions:
            if transaction.claim_id is not None and transaction.claim_id != self.claim_id:
                raise ValueError("a transaction of another claim")

    def __repr__(self) -> str:  # the raw patient_id never shows, as in ScoreItem
        return f"FastScoreItem(claim_id={self.claim_id!r}, ...)"


class FastScoreRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``ScoreRequest`` in the canonical subset."""

    items: Annotated[list[FastScoreItem], msgspec.Meta(min_length=1)]
    reasons: bool = True
    as_of: dt.date | None = None


_DECODER = msgspec.json.Decoder(FastScoreRequest)


def decode_score_request(raw: bytes) -> FastScoreRequest | None:
    """The body, if it lies in the canonical subset; otherwise None, for ``ScoreRequest`` to
    validate."""
    try:
        return _DECODER.decode(raw)
    except (msgspec.MsgspecError, ValueError):  # ValueError: bytes that are not UTF-8
        return None
