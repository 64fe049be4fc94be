"""A thread that only computes, beside what a benchmark times: a second request of a server worker.

Used by ``bench_audit_append.py`` and ``bench_score_request.py`` (``--busy-thread``): code that
lets go of the GIL (a database step, a hash of 2 KB or more, a LightGBM call) may then wait up to
the switch interval (5 ms) to get it back each time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def busy_thread(wanted: bool) -> Iterator[None]:
    """If wanted, a thread that runs Python bytecode without pause until the block ends."""
    if not wanted:
        yield
        return
    stop = threading.Event()

    def spin() -> None:
        count = 0
        while not stop.is_set():
            count += 1

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
