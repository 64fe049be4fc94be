"""Envelopes: separators from ISA, several interchanges, counts and control numbers, errors."""

from __future__ import annotations

import gzip

import pytest

from features.x12 import X12Error, read_x12
from features.x12.envelope import read_transaction_sets
from tests.features.x12.x12_text import (
    REMITTANCE,
    envelope,
    isa,
    remittance,
    render,
    write,
)

PAID = ["CLP*C1*1*100*80**CI", "CAS*CO*45*20"]


def _sets(path):
    warnings: list = []
    return list(read_transaction_sets(path, warnings)), warnings


def _elements(transaction) -> list[list[str]]:
    return [transaction.elements(index) for index in range(len(transaction.ids))]


def test_read_transaction_sets_separators_from_isa_give_the_same_segments(tmp_path):
    segments = envelope([remittance(PAID, total="80")], "835", REMITTANCE)
    plain = write(tmp_path / "plain.835", segments)
    odd = write(
        tmp_path / "odd.835", segments, element="|", component=">", terminator="!", breaks=""
    )
    newline = tmp_path / "newline.835"
    newline.write_text(render(segments, element="+", component="\\", terminator="\n", breaks=""))
    crlf = tmp_path / "crlf.835"
    crlf.write_bytes(render(segments, terminator="~", breaks="\r\n").encode())
    expected, _ = _sets(plain)
    for path in (odd, newline, crlf):
        found, warnings = _sets(path)
        assert [_elements(s) for s in found] == [_elements(s) for s in expected], path.name
        assert [s.ids for s in found] == [s.ids for s in expected]
        assert warnings == []
    assert _elements(expected[0])[3] == ["N1", "PR", "PAYER ONE", "XV", "PAYER01"]


def test_read_transaction_sets_isa_with_short_fields_is_read_by_counting_separators(tmp_path):
    segments = envelope([remittance(PAID, total="80")], "835", REMITTANCE)
    segments[0] = "ISA*00**00**ZZ*SUB*ZZ*REC*250310*1200*^*00501*000000001*0*P*:"
    found, warnings = _sets(write(tmp_path / "short.835", segments))
    assert found[0].interchange == "000000001" and found[0].kind == "835"
    assert warnings == []


def test_read_transaction_sets_several_interchanges_groups_and_sets_in_one_file(tmp_path):
    first = envelope(
        [remittance(PAID, trace="T1"), remittance(PAID, trace="T2")], "835", REMITTANCE
    )
    second = envelope([remittance(PAID, trace="T3")], "835", REMITTANCE, control="000000002")
    second_group = ["GS*HP*SENDER*RECEIVER*20250311*1200*2*X*" + REMITTANCE]
    second_group += ["ST*835*0009*" + REMITTANCE, *remittance(PAID, trace="T4"), "SE*9*0009"]
    second_group += ["GE*1*2"]
    second = second[:-1] + second_group + ["IEA*2*000000002"]
    found, warnings = _sets(write(tmp_path / "many.835", first + second))
    assert [(s.interchange, s.control) for s in found] == [
        ("000000001", "0001"),
        ("000000001", "0002"),
        ("000000002", "0001"),
        ("000000002", "0009"),
    ]
    assert [s.elements(2)[2] for s in found] == ["T1", "T2", "T3", "T4"]
    assert warnings == []


def test_read_transaction_sets_wrong_counts_and_control_numbers_are_warnings(tmp_path):
    segments = envelope([remittance(PAID)], "835", REMITTANCE)
    segments[-3] = "SE*99*0002"  # count and control number of the transaction set
    segments[-2] = "GE*3*7"
    segments[-1] = "IEA*2*000000009"
    found, warnings = _sets(write(tmp_path / "counts.835", segments))
    assert len(found) == 1
    messages = sorted(w.message for w in warnings)
    assert messages == [
        "GE01 says '3', the count is '1'",
        "GE02 says '7', the control is '1'",
        "IEA01 says '2', the count is '1'",
        "IEA02 says '000000009', the control is '000000001'",
        "SE01 says '99', the segment count is '9'",
        "SE02 says '0002', the control is '0001'",
    ]
    se_warning = next(w for w in warnings if w.message.startswith("SE01"))
    assert se_warning.kind == "count_mismatch"
    assert str(se_warning.location).endswith(
        "interchange 000000001, transaction set 0001, segment 11 (9 of its transaction set) SE"
    )


def test_read_transaction_sets_truncated_file_is_an_error_naming_the_set(tmp_path):
    segments = envelope([remittance(PAID)], "835", REMITTANCE)[:-3]  # no SE, GE, IEA
    with pytest.raises(X12Error) as caught:
        _sets(write(tmp_path / "cut.835", segments))
    message = str(caught.value)
    assert "cut.835, interchange 000000001, transaction set 0001, segment 10 CAS" in message
    assert "truncated file" in message


def test_read_transaction_sets_missing_iea_is_a_truncated_file(tmp_path):
    segments = envelope([remittance(PAID)], "835", REMITTANCE)[:-1]
    with pytest.raises(X12Error, match="no IEA.*truncated file"):
        _sets(write(tmp_path / "cut.835", segments))


def test_read_transaction_sets_wrong_segment_terminator_is_an_error(tmp_path):
    segments = envelope([remittance(PAID)], "835", REMITTANCE)
    text = render(segments)
    isa_end = text.index("~") + 1
    broken = text[:isa_end] + text[isa_end:].replace("~", "")  # segments end with line breaks
    path = tmp_path / "terminator.835"
    path.write_text(broken)
    with pytest.raises(X12Error) as caught:
        _sets(path)
    assert "terminator.835, segment 1 ISA" in str(caught.value)
    assert "wrong segment terminator" in str(caught.value)
    assert "line breaks" in str(caught.value)


def test_read_transaction_sets_segment_outside_a_transaction_set_is_an_error(tmp_path):
    segments = envelope([remittance(PAID)], "835", REMITTANCE)
    segments.insert(-2, "CLP*C9*1*10*10")  # after SE, before GE
    with pytest.raises(X12Error) as caught:
        _sets(write(tmp_path / "stray.835", segments))
    assert "interchange 000000001, segment 12 CLP" in str(caught.value)
    assert "expected ST or GE" in str(caught.value)


def test_read_transaction_sets_st_inside_a_transaction_set_is_an_error(tmp_path):
    segments = envelope([remittance(PAID)], "835", REMITTANCE)
    segments.insert(5, "ST*835*0002*" + REMITTANCE)
    with pytest.raises(X12Error, match="segment 6: ST inside a transaction set"):
        _sets(write(tmp_path / "nested.835", segments))


def test_read_transaction_sets_not_x12_is_an_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("claim_id,amount\nC1,10\n")
    with pytest.raises(X12Error, match="notes.txt, segment 1 cla: expected ISA"):
        _sets(path)


def test_read_x12_gzip_is_read_whatever_its_name(tmp_path):
    segments = envelope([remittance(PAID, total="80")], "835", REMITTANCE)
    packed = tmp_path / "era.835"
    packed.write_bytes(gzip.compress(render(segments).encode()))
    result = read_x12([], [packed])
    assert result.summary.files == 1 and result.summary.posting.remittance_claims == 1


def test_isa_builder_is_106_characters_with_full_width_fields():
    assert len(isa() + "~") == 106
