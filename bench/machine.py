"""How fast this machine runs Python right now, printed beside a benchmark's figures.

The shared machines here have run the same code at speeds up to twice apart from one hour to the
next (``sum(range(10**6))`` in 16 ms, then 28 ms), so a figure means little without the speed the
machine had when it was measured. Compare figures taken at about the same speed, or side by side
in one run.
"""

from __future__ import annotations

import time


def python_speed_ms(repeats: int = 5) -> float:
    """Milliseconds for ``sum(range(10**6))``, the best of ``repeats`` (lower is faster)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        sum(range(10**6))
        best = min(best, time.perf_counter() - started)
    return 1000 * best


def speed_note(before: float, after: float | None = None) -> str:
    """A line for a report: the machine's speed at the start (and end) of a run."""
    measured = f"{before:.1f} ms" if after is None else f"{before:.1f} ms before, {after:.1f} after"
    return f"machine speed: sum(range(10**6)) in {measured} (best of 5; lower is faster)"
