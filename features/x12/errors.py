"""Where a problem stands in an X12 file, the error that refuses a file and the warnings that don't.

An error names the file, the interchange (ISA13) and transaction-set (ST02) control numbers, the
segment's position (counted from 1 in the file, and within its transaction set) and its id, so a
user can open the file at that segment. Claim and patient identifiers are never part of the
message of an error (a warning, ``features.importing.ImportWarning``, carries the claim id in a
field of its own for the warnings file, never in its text).
"""

from __future__ import annotations

from dataclasses import dataclass

from features.errors import ArscoreError


@dataclass(frozen=True)
class Location:
    """A segment's place: file, interchange and transaction-set control numbers, position, id."""

    file: str
    interchange: str | None = None
    transaction_set: str | None = None
    position: int | None = None
    position_in_set: int | None = None
    segment_id: str | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.interchange is not None:
            parts.append(f"interchange {self.interchange}")
        if self.transaction_set is not None:
            parts.append(f"transaction set {self.transaction_set}")
        if self.position is not None:
            segment = f"segment {self.position}"
            if self.position_in_set is not None:
                segment += f" ({self.position_in_set} of its transaction set)"
            if self.segment_id:
                segment += f" {self.segment_id}"
            parts.append(segment)
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a transaction set stands; ``at(index)`` is the location of one of its segments.

    Records keep an origin and a segment index, and build the ``Location`` only when a warning
    or an error needs it."""

    file: str
    interchange: str
    transaction_set: str
    first_position: int

    def at(self, index: int, segment_id: str) -> Location:
        """The location of the transaction set's segment ``index`` (0 is its ST)."""
        return Location(
            self.file,
            self.interchange,
            self.transaction_set,
            self.first_position + index,
            index + 1,
            segment_id,
        )


class X12Error(ArscoreError):
    """A file that cannot be read as X12 where it stands; nothing was written."""

    def __init__(self, location: Location, message: str):
        self.location = location
        self.reason = message
        super().__init__(f"{location}: {message}")
