"""A score item becomes the model path's records field by field, whatever the fields' order."""

from __future__ import annotations

from decimal import Decimal

from serving.api.routers.scores import claim_record, event_records
from serving.api.schemas import ScoreItem
from serving.scoring.records import ClaimRecord, EventRecord
from tests.factories import claim_row, tx_row


def _item() -> ScoreItem:
    """An item whose every field holds a value no other field holds."""
    body = claim_row(
        "C-9",
        patient_id="P-1",
        payer_id="PAYER-3",
        place_of_service="22",
        service_date="2025-01-05",
        billed_date="2025-01-09",
        total_charge="1234.56",
        expected_amount="789.01",
        patient_age=61,
        patient_state="OR",
        patient_zip3="972",
    )
    body["transactions"] = [
        tx_row("C-9", "2025-02-01", "denial", "12.34", party="payer"),
        tx_row("C-9", "2025-02-03", "payment", None, party="patient"),
    ]
    body["transactions"][0].update(carc_group="CO", carc_code="45", rarc_code="N130")
    return ScoreItem.model_validate(body)


def _plain(value: object) -> object:
    return float(value) if isinstance(value, Decimal) else value


def test_claim_record_takes_each_field_from_the_item_field_of_its_name():
    item = _item()
    record = claim_record(item, "pk_0123")
    for name in ClaimRecord._fields:
        expected = "pk_0123" if name == "patient_key" else _plain(getattr(item, name))
        assert getattr(record, name) == expected, name
    assert type(record.total_charge) is float and type(record.expected_amount) is float


def test_event_records_take_each_field_from_the_transaction_field_of_its_name():
    item = _item()
    events = event_records(item)
    assert len(events) == 2
    for event, sent in zip(events, item.transactions, strict=True):
        for name in EventRecord._fields:
            expected = item.claim_id if name == "claim_id" else _plain(getattr(sent, name))
            assert getattr(event, name) == expected, name
    assert events[0].carc_code == "45" and events[1].amount is None
