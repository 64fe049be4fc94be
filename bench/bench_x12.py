"""Segments per second reading X12 837/835 into the interchange tables, against pyx12.

Usage: .venv/bin/python bench/bench_x12.py [--claims 20000] [--seed 7] [--rounds 3]
       [--pyx12-segments 20000] [--workdir DIR]

Generates a synthetic history with ``arscore generate``'s generator, writes it as 837 and 835
files (``training.synthetic.x12``), keeps Arrow to one thread (every run is then one thread of
execution; ``--pin`` also pins the process to one core), then in each round, one after the
other so all see the same machine speed:
- arscore on every file: ``features.x12.read_x12`` from the files to the claims and transactions
  frames (end to end: tokenizing, envelopes, grammar, mapping, posting, frames), and then the
  same plus writing both tables as Parquet;
- arscore and pyx12 on the same sample of files (the first files holding at least
  ``--pyx12-segments`` segments): pyx12's ``X12ContextReader`` (parsing with its validation
  against the implementation-guide maps, as pyx12 reads), and its bare tokenizer ``X12Reader``.
Prints segments per second of wall time and per CPU second (the process's own time, which
on a shared machine does not count the waits for a core), best of the rounds, the ratios, and
the machine's speed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pyarrow as pa  # noqa: E402
import pyx12  # noqa: E402
import pyx12.error_handler  # noqa: E402
import pyx12.params  # noqa: E402
import pyx12.x12context  # noqa: E402
import pyx12.x12file  # noqa: E402
from machine import python_speed_ms, speed_note  # noqa: E402

from features.x12 import read_x12, x12_files  # noqa: E402
from training.synthetic import GeneratorConfig, generate_history  # noqa: E402
from training.synthetic.x12 import write_x12  # noqa: E402


def exported(claims: int, seed: int, workdir: Path) -> Path:
    """The 837/835 folder for the history (written once; reused when it exists)."""
    folder = workdir / f"x12-{claims}-{seed}"
    if not (folder / "835").is_dir():
        history = generate_history(GeneratorConfig(n_claims=claims, seed=seed))
        write_x12(*history, folder)
    return folder


def ours(claims: list[Path], remits: list[Path], out: Path | None = None) -> int:
    """Read into the interchange tables (and write them as Parquet when ``out`` is given)."""
    result = read_x12(claims, remits)
    if out is not None:
        result.claims.to_parquet(out / "claims.parquet", index=False)
        result.transactions.to_parquet(out / "transactions.parquet", index=False)
    return result.summary.segments


def pyx12_validating(files: list[Path]) -> int:
    """pyx12 parsing with validation, the way its readers and x12valid read a file."""
    segments = 0
    for path in files:
        with open(path) as handle:
            reader = pyx12.x12context.X12ContextReader(
                pyx12.params.params(), pyx12.error_handler.errh_null(), handle
            )
            segments += sum(1 for _ in reader.iter_segments())
    return segments


def pyx12_tokenizer(files: list[Path]) -> int:
    """pyx12's bare segment reader (no maps, no validation)."""
    segments = 0
    for path in files:
        with open(path) as handle:
            segments += sum(1 for _ in pyx12.x12file.X12Reader(handle))
    return segments


def sample(files: list[Path], wanted: int) -> list[Path]:
    """The first files (837s and 835s taken in turn) holding at least ``wanted`` segments."""
    chosen, total = [], 0
    for path in files:
        if total >= wanted:
            break
        chosen.append(path)
        total += path.read_text().count("~")
    return chosen


def timed(run: Callable[[], int]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and segments of one run."""
    started, cpu = time.perf_counter(), time.process_time()
    segments = run()
    return time.perf_counter() - started, time.process_time() - cpu, segments


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pyx12-segments", type=int, default=20_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--pin", action="store_true", help="pin the process to one core")
    args = parser.parse_args()
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    if args.pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    with tempfile.TemporaryDirectory() as temporary:
        workdir = args.workdir or Path(temporary)
        folder = exported(args.claims, args.seed, workdir)
        claims, remits = x12_files([folder / "837"]), x12_files([folder / "835"])
        interleaved = [p for pair in zip(claims, remits, strict=False) for p in pair]
        subset = sample(interleaved, args.pyx12_segments)
        sub_claims = [p for p in subset if p.parent.name == "837"]
        sub_remits = [p for p in subset if p.parent.name == "835"]
        out = Path(temporary) / "out"
        out.mkdir()
        runs: dict[str, Callable[[], int]] = {
            "arscore, all files, into the tables": lambda: ours(claims, remits),
            "arscore, all files, tables written as Parquet": lambda: ours(claims, remits, out),
            "arscore, sample": lambda: ours(sub_claims, sub_remits),
            "pyx12 X12ContextReader (validating), sample": lambda: pyx12_validating(subset),
            "pyx12 X12Reader (tokenizer only), sample": lambda: pyx12_tokenizer(subset),
        }
        before = python_speed_ms()
        walls: dict[str, list[float]] = {name: [] for name in runs}
        cpus: dict[str, list[float]] = {name: [] for name in runs}
        segments: dict[str, int] = {}
        for _ in range(args.rounds):
            for name, run in runs.items():
                wall, cpu, segments[name] = timed(run)
                walls[name].append(wall)
                cpus[name].append(cpu)
        after = python_speed_ms()
    size = sum(p.stat().st_size for p in claims + remits)
    print(f"{len(claims)} 837 files and {len(remits)} 835 files, {size / 1e6:.1f} MB")
    print(f"sample: {len(sub_claims)} 837 and {len(sub_remits)} 835 files")
    rate = {name: segments[name] / min(walls[name]) for name in runs}
    cpu_rate = {name: segments[name] / min(cpus[name]) for name in runs}
    print(f"{'':46s} {'segments':>9s} {'wall s':>7s} {'per s':>9s} {'CPU s':>7s} {'per CPU s':>9s}")
    for name in runs:
        print(
            f"{name:46s} {segments[name]:>9,} {min(walls[name]):7.2f} {rate[name]:>9,.0f} "
            f"{min(cpus[name]):7.2f} {cpu_rate[name]:>9,.0f}"
        )
    names = list(runs)
    for label, other in (("pyx12 validating", names[3]), ("pyx12 tokenizer", names[4])):
        print(
            f"ratio arscore / {label} on the same files: {rate[names[2]] / rate[other]:,.2f} "
            f"(wall), {cpu_rate[names[2]] / cpu_rate[other]:,.2f} (CPU)"
        )
    python = sys.version.split()[0]
    pinned = "pinned to one core" if args.pin else "one thread"
    print(f"best of {args.rounds} rounds, {pinned}; pyx12 {pyx12.__version__}, python {python}")
    print(speed_note(before, after))
    return 0


if __name__ == "__main__":
    sys.exit(main())
