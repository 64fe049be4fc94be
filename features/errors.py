"""Domain errors with messages a user can act on."""

from __future__ import annotations

from dataclasses import dataclass


class ArscoreError(Exception):
    """Base class of the errors arscore raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One validation problem: where it is and what was expected."""

    source: str
    column: str
    expected: str
    rows: tuple[int, ...] = ()
    n_rows: int = 0

    def __str__(self) -> str:
        where = f"{self.source}: column '{self.column}'"
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows)
            more = (
                f" and {self.n_rows - len(self.rows)} more" if self.n_rows > len(self.rows) else ""
            )
            noun = "row" if self.n_rows == 1 else "rows"
            where += f", {noun} {shown}{more}"
        return f"{where}: expected {self.expected}"


class ValidationError(ArscoreError):
    """Input that does not follow the interchange format; nothing was written."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the input, nothing was written:\n{lines}")
