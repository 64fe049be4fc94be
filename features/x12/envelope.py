"""X12 files into transaction sets: separators from the ISA header, then ISA/GS/ST envelopes.

Separators are never assumed: the element separator is the character after ``ISA``, the
component separator is ISA16 and the segment terminator the character after it (or a CR LF
pair), found by counting ISA's 16 element separators (ISA is 106 characters only when every
field is full width). Line breaks after terminators are tolerated; a file may hold several
interchanges, each several functional groups (GS/GE), each several transaction sets (ST/SE).
Counts and control numbers that do not match (SE01/SE02, GE01/GE02, IEA01/IEA02) are warnings;
a segment outside the envelope it needs, or a file that ends inside one, is an ``X12Error``.
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from features.importing import ImportWarning
from features.x12.errors import Location, Origin, X12Error

ISA_ELEMENTS = 16
GS_ELEMENTS = 8
LINE_BREAKS = ("\r", "\n")
ENVELOPE_IDS = frozenset(("ISA", "GS", "ST", "GE", "IEA"))
CENTURY_PIVOT = "70"  # ISA09 is YYMMDD: 70-99 are 19xx, 00-69 20xx (GS04 has the century)
TERMINATOR_SEARCH = 1_000  # characters after ISA in which the terminator must occur again


@dataclass(frozen=True)
class Separators:
    """The delimiters an interchange declares in its ISA header."""

    element: str
    component: str
    repetition: str | None
    segment: str


@dataclass
class TransactionSet:
    """One ST..SE transaction set with its envelope: what the 837 and 835 mappings read.

    ``segments`` holds each segment's text and ``ids`` its id; a mapping splits into elements
    (``elements``) only the segments it reads, since splitting is most of a reader's cost."""

    file: str
    interchange: str
    interchange_date: str
    version: str
    control: str
    kind: str
    separators: Separators
    segments: list[str]
    ids: list[str]
    origin: Origin

    def elements(self, index: int) -> list[str]:
        """The elements of ``segments[index]``, the id first."""
        return self.segments[index].split(self.separators.element)

    def location(self, index: int) -> Location:
        """The location of ``segments[index]`` (0 is ST)."""
        segment_id = self.ids[index] if 0 <= index < len(self.ids) else ""
        return self.origin.at(index, segment_id)


def read_text(path: Path) -> str:
    """A file's text, gunzipped when it starts with the gzip magic bytes (whatever its name)."""
    data = Path(path).read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise X12Error(Location(str(path)), f"not a readable gzip file ({error})") from error
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def find_separators(text: str, start: int, location: Location) -> tuple[Separators, int]:
    """The separators of the ISA at ``start`` and the index just after its terminator."""
    element = text[start + 3 : start + 4]
    if not element or element.isalnum() or element.isspace():
        raise X12Error(location, "an ISA header needs an element separator after 'ISA'")
    position = start + 3
    for _ in range(ISA_ELEMENTS - 1):
        position = text.find(element, position + 1)
        if position < 0:
            raise X12Error(location, f"the ISA header ends before its {ISA_ELEMENTS} elements")
    component = text[position + 1 : position + 2]
    segment = text[position + 2 : position + 3]
    if segment == "\r" and text[position + 3 : position + 4] == "\n":
        segment = "\r\n"
    if not component or not segment or segment.isalnum() or segment == element:
        raise X12Error(location, "no segment terminator after ISA16 (the component separator)")
    isa = text[start : position + 2].split(element)
    repetition = isa[11] if isa[12] >= "00501" and not isa[11].isalnum() else None
    end = position + 2 + len(segment)
    following = text[end : end + TERMINATOR_SEARCH]
    if segment not in following and following.strip():
        breaks = " (its segments seem to end with line breaks)" if "\n" in following else ""
        raise X12Error(
            location,
            f"the segment terminator {segment!r} that follows ISA16 ends no segment after the "
            f"ISA header{breaks}: wrong segment terminator",
        )
    return Separators(element, component, repetition, segment), end


class _Interchange:
    """The state of one interchange being read: its header, group and transaction set."""

    def __init__(self, file: str, isa: list[str], separators: Separators, position: int):
        self.file = file
        self.separators = separators
        self.control = isa[13] if len(isa) > 13 else ""
        short = isa[9] if len(isa) > 9 and len(isa[9]) == 6 else ""
        self.date = ("19" if short[:2] >= CENTURY_PIVOT else "20") + short if short else ""
        self.version = isa[12] if len(isa) > 12 else ""
        self.position = position
        self.groups = 0
        self.group: list[str] | None = None
        self.sets_in_group = 0

    def location(self, position: int, segment_id: str) -> Location:
        return Location(self.file, self.control, None, position, None, segment_id)

    def where(self, position: int, segment_id: str) -> Callable[[], Location]:
        """The location of an envelope segment, built only if a warning needs it."""
        return lambda: self.location(position, segment_id)


def read_transaction_sets(
    path: Path,
    warnings: list[ImportWarning],
    text: str | None = None,
    tally: Counter | None = None,
) -> Iterator[TransactionSet]:
    """Every transaction set of a file, in order; envelope warnings are appended to ``warnings``,
    interchanges and segments counted in ``tally``."""
    name = str(path)
    text = read_text(path) if text is None else text
    start = _skip_blank(text, 0)
    if start < 0:
        raise X12Error(Location(name), "the file is empty: expected an ISA header")
    if not text.startswith("ISA", start):
        found = text[start : start + 3]
        raise X12Error(Location(name, position=1, segment_id=found), "expected ISA (an X12 file)")
    first, _ = find_separators(text, start, Location(name, position=1, segment_id="ISA"))
    if first.segment not in LINE_BREAKS and first.segment != "\r\n":
        text = text.replace("\r", "").replace("\n", "")
        start = _skip_blank(text, 0)
    counted = 0
    while start >= 0:
        location = Location(name, position=counted + 1, segment_id=text[start : start + 3])
        if not text.startswith("ISA", start):
            raise X12Error(location, "expected ISA (the start of an interchange)")
        separators, _ = find_separators(text, start, location)
        segments, start = _interchange_segments(text, start, separators)
        yield from _walk_interchange(name, segments, separators, counted, warnings)
        counted += len(segments)
        if tally is not None:
            tally["interchanges"] += 1
            tally["segments"] += len(segments)
        start = _skip_blank(text, start) if start < len(text) else -1


def _skip_blank(text: str, start: int) -> int:
    """The index of the next character that is not white space, -1 at the end."""
    for index in range(start, len(text)):
        if not text[index].isspace():
            return index
    return -1


def _interchange_segments(text: str, start: int, separators: Separators) -> tuple[list[str], int]:
    """The raw segments from the ISA at ``start`` through its IEA, and where the next one starts."""
    term = separators.segment
    marker = term + "IEA" + separators.element
    found = text.find(marker, start)
    if found < 0:
        end, after = len(text), len(text)
    else:
        end = text.find(term, found + len(marker))
        end, after = (len(text), len(text)) if end < 0 else (end, end + len(term))
    raw = text[start:end].split(term)
    if raw and not raw[-1].strip():
        raw.pop()
    return raw, after


def _walk_interchange(
    name: str,
    raw_segments: list[str],
    separators: Separators,
    counted: int,
    warnings: list[ImportWarning],
) -> Iterator[TransactionSet]:
    """Check one interchange's envelopes and yield its transaction sets."""
    element = separators.element
    ids = [raw.partition(element)[0] for raw in raw_segments]
    state = _Interchange(name, raw_segments[0].split(element), separators, counted + 1)
    index, count = 1, len(ids)
    while index < count:
        if ids[index] == "ST" and state.group is not None:
            end = _set_end(state, ids, raw_segments, index, counted)
            yield _transaction_set(
                state,
                raw_segments[index : end + 1],
                ids[index : end + 1],
                counted + index + 1,
                warnings,
            )
            index = end + 1
            continue
        segment = raw_segments[index].split(element)
        _envelope_segment(state, segment, counted + index + 1, warnings)
        if ids[index] == "IEA":
            return
        index += 1
    last = ids[-1] if ids else "ISA"
    where = state.location(counted + count, last)
    raise X12Error(where, "the file ends inside the interchange (no IEA): truncated file")


def _set_end(
    state: _Interchange, ids: list[str], raw_segments: list[str], start: int, counted: int
) -> int:
    """The index of the SE closing the ST at ``start``; an envelope segment before it, or the
    end of the file, is an error."""
    control = _element(raw_segments[start].split(state.separators.element), 2)
    try:
        end = ids.index("SE", start + 1)
    except ValueError:
        where = Location(state.file, state.control, control, counted + len(ids), None, ids[-1])
        raise X12Error(
            where, "the file ends inside the transaction set (no SE): truncated file"
        ) from None
    inside = ENVELOPE_IDS.intersection(ids[start + 1 : end])
    if inside:
        misplaced = min(ids.index(envelope, start + 1, end) for envelope in inside)
        where = Location(state.file, state.control, control, counted + misplaced + 1, None)
        raise X12Error(where, f"{ids[misplaced]} inside a transaction set (before its SE)")
    return end


def _transaction_set(
    state: _Interchange,
    segments: list[str],
    ids: list[str],
    position: int,
    warnings: list[ImportWarning],
) -> TransactionSet:
    """One ST..SE with its envelope, SE01 and SE02 checked."""
    group = state.group
    assert group is not None
    element = state.separators.element
    header = segments[0].split(element)
    control = _element(header, 2)
    transaction = TransactionSet(
        state.file,
        state.control,
        _group_date(state),
        _element(header, 3) or _element(group, 8),
        control,
        _element(header, 1),
        state.separators,
        segments,
        ids,
        Origin(state.file, state.control, control, position),
    )
    state.sets_in_group += 1
    trailer = segments[-1].split(element)

    def where() -> Location:
        return transaction.location(len(segments) - 1)

    _check(warnings, where, "SE01", _element(trailer, 1), str(len(segments)), "count")
    _check(warnings, where, "SE02", _element(trailer, 2), control, "control")
    return transaction


def _envelope_segment(
    state: _Interchange, segment: list[str], position: int, warnings: list[ImportWarning]
) -> None:
    """Handle an envelope segment between transaction sets (GS, GE, IEA)."""
    sid = segment[0]
    where = state.where(position, sid)
    if sid == "GS" and state.group is None:
        if len(segment) - 1 != GS_ELEMENTS:
            raise X12Error(where(), f"GS has {len(segment) - 1} elements, expected {GS_ELEMENTS}")
        state.group, state.sets_in_group = segment, 0
        state.groups += 1
        return
    if sid == "GE" and state.group is not None:
        _check(warnings, where, "GE01", _element(segment, 1), str(state.sets_in_group), "count")
        _check(warnings, where, "GE02", _element(segment, 2), state.group[6], "control")
        state.group = None
        return
    if sid == "IEA" and state.group is None:
        _check(warnings, where, "IEA01", _element(segment, 1), str(state.groups), "count")
        _check(warnings, where, "IEA02", _element(segment, 2), state.control, "control")
        return
    expected = "ST or GE" if state.group is not None else "GS or IEA"
    raise X12Error(where(), f"unexpected segment {sid!r} here: expected {expected}")


def _group_date(state: _Interchange) -> str:
    group = state.group or []
    date = group[4] if len(group) > 4 else ""
    return date if len(date) == 8 else state.date


def _element(segment: list[str], index: int) -> str:
    return segment[index].strip() if len(segment) > index else ""


def _check(
    warnings: list[ImportWarning],
    where: Callable[[], Location],
    name: str,
    found: str,
    expected: str,
    kind: str,
) -> None:
    """A warning when a trailer's count or control number differs from what the file holds."""
    same = found.lstrip("0") == expected.lstrip("0") if kind == "count" else found == expected
    if not same:
        what = "segment count" if name == "SE01" else "count" if kind == "count" else "control"
        warnings.append(
            ImportWarning(
                f"{kind}_mismatch",
                where(),
                f"{name} says {found!r}, the {what} is {expected!r}",
            )
        )
