"""`arscore score --snapshots ...` of this checkout against another one, run after run.

Usage: .venv/bin/python bench/bench_reasons_ab.py --base-tree DIR [--workdir bench/out/treeshap]
       [--rows 100000] [--rounds 2] [--jobs 1]

``DIR`` is a checkout of the code to compare with (for example ``git worktree add /tmp/base
<commit>``); its packages are put first on ``PYTHONPATH`` with this virtualenv's libraries.
The model is bench/bench_treeshap.py's demo model (what `make demo` trains, built in
``--workdir`` if absent) and the table ``--rows`` open-balance snapshot rows drawn from its
history. Each round runs, for the base and then this checkout, the `arscore score` command line
in a fresh process, with ``--reasons`` and without, and prints its wall time and rows/s
(start-up and model loading included, as a user sees them); then the ratios of the fastest run
of each. Every output is checked to have one row per input row, and the two checkouts' scored
files are compared (probabilities and reasons).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from bench_treeshap import models
from machine import python_speed_ms, speed_note

HERE = Path(__file__).resolve().parent.parent
CLI = "import sys; from arscore.cli import main; sys.argv[0] = 'arscore'; main()"


def _sentences(value: object) -> tuple[str, ...]:
    """A scored row's reasons as a tuple (an empty list may be read back as None)."""
    return () if value is None else tuple(value)  # type: ignore[arg-type]


def run(
    tree: Path, table: Path, model_dir: Path, out: Path, reasons: bool, jobs: int
) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, all threads) of one `arscore score` process on
    ``tree``'s code. CPU seconds move much less than wall seconds when other work shares the
    cores."""
    command = [sys.executable, "-c", CLI, "score", "--snapshots", str(table), "--out", str(out)]
    command += ["--model", str(model_dir), "--jobs", str(jobs)]
    if reasons:
        command.append("--reasons")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(tree),
        "ARSCORE_DATABASE_URL": f"sqlite:///{out.parent / 'ab_audit.db'}",
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    started = time.perf_counter()
    process = subprocess.Popen(  # in the tree: `python -c` puts the current directory first
        command, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"{tree}: arscore score failed:\n{output[-3000:]}")
    return seconds, usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-tree", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, default=Path("bench/out/treeshap"))
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    _, rows = models(args.workdir)
    picked = rows.iloc[np.random.default_rng(args.seed).integers(0, len(rows), args.rows)]
    picked = picked.reset_index(drop=True)
    picked["claim_id"] = pd.array([f"B{i:010d}" for i in range(len(picked))], dtype="string")
    table = args.workdir / f"ab_snapshots_{args.rows}.parquet"
    picked.to_parquet(table, row_group_size=100_000)
    trees = {"base": args.base_tree.resolve(), "this": HERE}
    best: dict[tuple[str, bool], float] = {}
    best_cpu: dict[tuple[str, bool], float] = {}
    before = python_speed_ms()
    print(f"{args.rows:,} rows, --jobs {args.jobs}; base {trees['base']}, this {trees['this']}")
    for round_number in range(1, args.rounds + 1):
        for reasons in (True, False):
            for name, tree in trees.items():
                out = args.workdir / f"ab_scored_{name}_{int(reasons)}.parquet"
                seconds, cpu = run(tree, table, args.workdir / "model", out, reasons, args.jobs)
                scored = len(pd.read_parquet(out, columns=["claim_id"]))
                if scored != args.rows:
                    sys.exit(f"{name}: {scored} scored rows for {args.rows} input rows")
                key = (name, reasons)
                best[key] = min(best.get(key, float("inf")), seconds)
                best_cpu[key] = min(best_cpu.get(key, float("inf")), cpu)
                label = "--reasons" if reasons else "no reasons"
                print(
                    f"round {round_number} {name:4s} {label:10s} wall {seconds:7.2f} s "
                    f"{args.rows / seconds:9,.0f} rows/s; CPU {cpu:7.2f} s "
                    f"(machine speed now {python_speed_ms(3):.1f} ms)",
                    flush=True,
                )
    for reasons in (True, False):
        base = pd.read_parquet(args.workdir / f"ab_scored_base_{int(reasons)}.parquet")
        this = pd.read_parquet(args.workdir / f"ab_scored_this_{int(reasons)}.parquet")
        same = base["reasons"].map(_sentences) == this["reasons"].map(_sentences)
        difference = np.abs(base["probability_collected"] - this["probability_collected"]).max()
        label = "--reasons" if reasons else "no reasons"
        wall = best[("base", reasons)] / best[("this", reasons)]
        cpu = best_cpu[("base", reasons)] / best_cpu[("this", reasons)]
        print(
            f"{label:10s}: this / base = {wall:.2f} times the rows/s (fastest runs: base "
            f"{args.rows / best[('base', reasons)]:,.0f}, this "
            f"{args.rows / best[('this', reasons)]:,.0f}), {cpu:.2f} times the rows per CPU "
            f"second; probabilities differ by at most {difference:.1e}, "
            f"{float(same.mean()):.2%} of rows with the same reasons"
        )
    print(speed_note(before, python_speed_ms()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
