"""The msgspec decoder of /v1/scores bodies accepts only what ScoreRequest accepts, as the same."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from pydantic import BaseModel, ValidationError

from serving.api.routers.scores import score_inputs
from serving.api.schemas import ScoreItem, ScoreRequest, TransactionIn
from serving.api.score_request_msgspec import (
    FastScoreItem,
    FastScoreRequest,
    FastTransaction,
    decode_score_request,
)
from tests.factories import TEST_KEY

TODAY = dt.date(2025, 6, 30)
CLAIM = {
    "claim_id": '"C1"',
    "patient_id": '"P-77"',
    "payer_id": '"AETNA01"',
    "payer_type": '"commercial"',
    "claim_type": '"professional"',
    "place_of_service": '"11"',
    "service_date": '"2025-01-02"',
    "billed_date": '"2025-01-05"',
    "total_charge": "1000.5",
    "expected_amount": "600",
    "patient_age": "45",
    "patient_state": '"TX"',
    "patient_zip3": '"750"',
    "as_of": '"2025-06-01"',
}
TRANSACTION = {
    "claim_id": '"C1"',
    "date": '"2025-02-01"',
    "type": '"adjustment"',
    "amount": "300.1",
    "party": '"payer"',
    "carc_group": '"CO"',
    "carc_code": '"45"',
    "rarc_code": '"N130"',
    "reason": '"contractual"',
}
TOP = {"reasons": "false", "as_of": '"2025-06-30"'}
# JSON texts tried in every field: canonical values, and what only the schemas' rules decide
# (padding, blanks, other spellings, wrong types, out of range, other whitespace).
CANDIDATES = [
    "null",
    '""',
    '"   "',
    '"C1"',
    '" C1"',
    '"C1 "',
    '"C1\\u00a0"',
    '"\\u2003C1"',
    '"C1\\u001f"',
    '"\\u0085C1"',
    '"\\u00e9t\\u00e9"',
    '"a b"',
    '"a\\nb"',
    '"' + "x" * 64 + '"',
    '"' + "x" * 65 + '"',
    '"' + "x" * 63 + ' "',
    "0",
    "-0.0",
    "-1",
    "12",
    "12.5",
    "1e2",
    "12.0",
    '"12.50"',
    "1e400",
    "9999999999.99",
    "10000000000",
    "99999999999999999999999",
    "true",
    '"true"',
    "[]",
    "{}",
    '"2025-03-04"',
    '" 2025-03-04"',
    '"2025-3-04"',
    '"2025-02-30"',
    '"20250304"',
    '"86400"',
    "86400",
    '"2025-03-04T00:00:00"',
    '"commercial"',
    '"Commercial"',
    '"payment"',
    '"patient"',
    '"PR"',
    '" PR"',
    '"pr"',
    '"denial_write_off"',
]


def body_text(
    top: dict[str, str], claim: dict[str, str], transactions: list[dict[str, str]]
) -> bytes:
    """A request body from field -> JSON text mappings (texts written as given)."""

    def obj(fields: dict[str, str]) -> str:
        return "{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}"

    item = obj({**claim, "transactions": "[" + ",".join(map(obj, transactions)) + "]"})
    return obj({**top, "items": f"[{item}]"}).encode()


def variants() -> list[bytes]:
    """The canonical body, then each field of each level left out or set to each candidate,
    plus an unknown field, a repeated field and a transaction of another claim."""
    found = [body_text(TOP, CLAIM, [TRANSACTION])]
    for level, fields in (("top", TOP), ("claim", CLAIM), ("transaction", TRANSACTION)):
        for name, value in itertools.product(fields, [None, *CANDIDATES]):
            changed = {k: v for k, v in fields.items() if k != name}
            if value is not None:
                changed[name] = value
            parts = {"top": TOP, "claim": CLAIM, "transaction": TRANSACTION, level: changed}
            found.append(body_text(parts["top"], parts["claim"], [parts["transaction"]]))
    found.append(body_text(TOP, {**CLAIM, "unknown": "1"}, [TRANSACTION]))
    found.append(body_text(TOP, CLAIM, [{**TRANSACTION, "unknown": "1"}]))
    found.append(body_text(TOP, CLAIM, [{**TRANSACTION, "claim_id": '"C2"'}]))
    found.append(body_text(TOP, CLAIM, []))
    found.append(body_text({}, CLAIM, [TRANSACTION]))
    duplicated = body_text(TOP, CLAIM, [TRANSACTION]).replace(
        b'"payer_id":"AETNA01"', b'"payer_id":" X ","payer_id":"AETNA02"'
    )
    found.append(duplicated)
    found.extend([b'{"items":[]}', b"[]", b"{not json", b'{"items":[1]}', b'{"items":"C1"}'])
    return found


def plain(value: Any) -> Any:
    """A body as nested plain values, money as the float the model path takes."""
    if isinstance(value, BaseModel):
        return {name: plain(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, msgspec.Struct):
        return {name: plain(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    return value


def test_fast_structs_have_the_fields_and_defaults_of_the_request_models():
    for fast, model in (
        (FastScoreRequest, ScoreRequest),
        (FastScoreItem, ScoreItem),
        (FastTransaction, TransactionIn),
    ):
        fields = {f.name: f for f in msgspec.structs.fields(fast)}
        assert set(fields) == set(model.model_fields), fast.__name__
        for name, field in model.model_fields.items():
            required = fields[name].required
            assert required == field.is_required(), f"{fast.__name__}.{name}"
            if not required:
                default = fields[name].default
                if default is msgspec.NODEFAULT:
                    default = fields[name].default_factory()
                assert default == field.get_default(call_default_factory=True), name


def test_fast_decoder_accepts_only_what_score_request_accepts_and_gives_the_same():
    accepted = refused_by_both = 0
    for raw in variants():
        fast = decode_score_request(raw)
        try:
            validated = ScoreRequest.model_validate_json(raw)
        except ValidationError:
            assert fast is None, raw
            refused_by_both += 1
            continue
        if fast is None:
            continue  # outside the canonical subset: ScoreRequest decides
        accepted += 1
        assert plain(fast) == plain(validated), raw
        assert score_inputs(fast, TEST_KEY, TODAY) == score_inputs(validated, TEST_KEY, TODAY)
    assert decode_score_request(variants()[0]) is not None
    assert accepted > 100 and refused_by_both > 100  # both sides of the comparison were tried


@pytest.mark.parametrize("raw", [b'{"items":[]}', b"\xff", b'{"items":[{"claim_id":"\\ud800"}]}'])
def test_fast_decoder_leaves_bad_bodies_to_score_request(raw):
    assert decode_score_request(raw) is None


def test_fast_item_repr_hides_the_patient_id():
    body = decode_score_request(body_text(TOP, CLAIM, [TRANSACTION]))
    assert body is not None
    assert "P-77" not in repr(body) and "C1" in repr(body.items[0])
