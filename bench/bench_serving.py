"""arscore's HTTP API against `mlflow models serve` on the same model, under wrk.

Usage: .venv/bin/python bench/bench_serving.py [--duration 20] [--warmup 5] [--workers 1]
       [--batch-concurrency 2,4] [--single-concurrency 16] [--reuse DIR] [--keep]
       [--only single,batch,batch_reasons] [--servers arscore,mlflow]

In a temporary directory (never the repository's data/, models/ or var/), builds the model the
way `make demo` does (generate 20,000 claims with seed 7, dataset, train, promote, load), creates
a scorer API key and writes request bodies of open balances as of the history's last day. Then,
one server at a time on 127.0.0.1 (never both under load at once), each scenario is checked with
one request (status 200, one result per claim) and measured with wrk for ``--duration`` seconds
after ``--warmup`` seconds:

* arscore ``POST /v1/scores``: single claims with reasons (a pool of 200 distinct claims) at
  ``--single-concurrency``; 1,000-claim batches without and with reasons at each
  ``--batch-concurrency``. Every score goes through the durable audit write on SQLite, as the
  server is configured by default;
* ``mlflow models serve -m models:/arscore@champion --env-manager local`` ``POST /invocations``:
  the same claims' snapshot rows (the pyfunc's input columns), single rows and 1,000-row batches.

Prints a table (requests/s, claims/s, p50, p99, non-2xx) and the ratios the issue asks for,
the peak RSS of each server's process tree, how many of the load generator's connections each
server process held (sampled once per run: with several workers one may hold them all) and the
model's tree counts. Any non-2xx response or socket error fails the scenario loudly (status and
body shown) and the run exits with 1, as does a scenario in which no response completed: a
1,000-claim request with reasons takes seconds, so a short ``--duration`` times few or none of
them (rates count the responses completed within the measured time; each run starts once the
server is idle again after the warm-up).
``--only`` and ``--servers`` measure a part (say ``--only batch --servers arscore``, to compare two
versions of arscore run after run); the ratios that need both servers are then left out.
Requires wrk (``apt-get install wrk``). Timings on a shared machine are noisy: compare ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from machine import python_speed_ms, speed_note
from serving_load import Result, Scenario, Server, check_once, measure
from serving_workspace import (
    BIN,
    MODEL_URI,
    WORKSPACE_MARKER,
    Bodies,
    Workspace,
    audit_count,
    audit_durability,
    build_workspace,
    model_summary,
    scorer_token,
    write_bodies,
)

GOAL_SINGLE_RATIO, GOAL_BATCH_CLAIMS = 2.0, 20_000
KINDS = ("single", "batch", "batch_reasons")
SERVERS = ("arscore", "mlflow")


def agreement(arscore: list[dict], mlflow: list[dict]) -> str:
    """Largest difference in probability between the two servers on the same claims."""
    by_claim = {row["claim_id"]: row["probability_collected"] for row in mlflow}
    diffs = [abs(s["probability_collected"] - by_claim[s["claim_id"]]) for s in arscore]
    return f"max |probability difference| arscore vs mlflow on one batch: {max(diffs):.2e}"


def scenarios(bodies: Bodies, token: str, args: argparse.Namespace) -> dict[str, list[Scenario]]:
    """The measured loads of each server, in the order they run."""
    single, n = args.single_concurrency, bodies.batch_items

    def arscore(kind: str, name: str, path: Path, claims: int, c: int) -> Scenario:
        return Scenario(kind, f"{name}, c{c}", "arscore", "/v1/scores", path, claims, c, token)

    def mlflow(kind: str, name: str, path: Path, rows: int, c: int) -> Scenario:
        return Scenario(kind, f"{name}, c{c}", "mlflow", "/invocations", path, rows, c)

    batch = args.batch_concurrency
    return {
        "arscore": [
            arscore("single", "arscore 1 claim, reasons", bodies.arscore_single, 1, single),
            *(
                arscore("batch", f"arscore {n:,} claims, no reasons", bodies.arscore_batch, n, c)
                for c in batch
            ),
            *(
                arscore(
                    "batch_reasons",
                    f"arscore {n:,} claims, reasons",
                    bodies.arscore_batch_reasons,
                    n,
                    c,
                )
                for c in batch
            ),
        ],
        "mlflow": [
            mlflow("single", "mlflow 1 row", bodies.mlflow_single, 1, single),
            *(mlflow("batch", f"mlflow {n:,} rows", bodies.mlflow_batch, n, c) for c in batch),
        ],
    }


def print_report(results: list[Result], servers: dict[str, Server], notes: list[str]) -> None:
    """The table, the ratios against the goals, memory, and the failures in full."""
    print("\n| scenario | requests/s | claims/s | p50 ms | p99 ms | non-2xx | socket errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        name = r.scenario.name + (" **FAILED**" if r.failed else "")
        print(
            f"| {name} | {r.requests_per_second:,.1f} | {r.claims_per_second:,.0f} | "
            f"{r.wrk['p50_us'] / 1e3:,.1f} | {r.wrk['p99_us'] / 1e3:,.1f} | "
            f"{r.wrk['non2xx']} | {r.socket_errors} |"
        )

    def best(server: str, kind: str) -> Result | None:
        found = [
            r
            for r in results
            if (r.scenario.server, r.scenario.kind) == (server, kind) and not r.failed
        ]
        return max(found, key=lambda r: r.claims_per_second) if found else None

    single, mlflow_single = best("arscore", "single"), best("mlflow", "single")
    batch, reasons = best("arscore", "batch"), best("arscore", "batch_reasons")
    mlflow_batch = best("mlflow", "batch")
    print()
    if single and mlflow_single:
        ratio = single.requests_per_second / mlflow_single.requests_per_second
        p99, mlflow_p99 = single.wrk["p99_us"] / 1e3, mlflow_single.wrk["p99_us"] / 1e3
        met = "met" if ratio >= GOAL_SINGLE_RATIO else "NOT met"
        print(
            f"single claim, arscore (reasons + audit) / mlflow req/s: {ratio:.2f}x "
            f"(goal >= {GOAL_SINGLE_RATIO:g}x: {met})"
        )
        print(
            f"single claim p99: arscore {p99:,.1f} ms, mlflow {mlflow_p99:,.1f} ms "
            f"(goal lower: {'met' if p99 < mlflow_p99 else 'NOT met'})"
        )
    if batch:
        met = "met" if batch.claims_per_second >= GOAL_BATCH_CLAIMS else "NOT met"
        print(
            f"1,000-claim batches without reasons: {batch.claims_per_second:,.0f} claims/s "
            f"at c{batch.scenario.connections} (goal >= {GOAL_BATCH_CLAIMS:,}: {met})"
        )
    if reasons:
        print(
            f"1,000-claim batches with reasons: {reasons.claims_per_second:,.0f} claims/s "
            f"at c{reasons.scenario.connections}"
        )
    if batch and reasons:
        extra_us = (1 / reasons.claims_per_second - 1 / batch.claims_per_second) * 1e6
        factor = batch.claims_per_second / reasons.claims_per_second
        print(f"reasons cost {extra_us:,.0f} us more per claim ({factor:.1f}x the time per claim)")
    if batch and mlflow_batch:
        ratio = batch.claims_per_second / mlflow_batch.claims_per_second
        print(
            f"1,000-claim batches, arscore (no reasons, audit) / mlflow rows/s: {ratio:.2f}x "
            f"(mlflow {mlflow_batch.claims_per_second:,.0f} rows/s)"
        )
    for name, server in servers.items():
        print(f"peak RSS of the {name} server's process tree: {server.peak_rss / 2**20:,.0f} MiB")
    staged = [r for r in results if r.stages_ms]
    if staged:
        print(
            "\narscore wall time per request by stage (ms, from /metrics; under concurrency it "
            "includes waiting for the GIL among the threadpool's threads):"
        )
        for r in staged:
            stages = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r.stages_ms.items()))
            print(f"  {r.scenario.name}: {stages}")
    if results:
        print(
            "\nconnections held per server process, sampled once early in each measured run (with "
            "several workers, a worker that holds none idles):"
        )
        for r in results:
            held = " + ".join(str(n) for n in r.placement) or "none seen"
            print(f"  {r.scenario.name}: {held}")
    for note in notes:
        print(note)
    for r in results:
        if r.failed:
            print(f"\nFAILED {r.scenario.name}: {r.problem}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20, help="seconds measured per scenario")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of warm-up per scenario")
    parser.add_argument("--workers", type=int, default=1, help="worker processes of each server")
    parser.add_argument("--single-concurrency", type=int, default=16)
    parser.add_argument(
        "--batch-concurrency",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[2, 4],
        help="connections for the batch scenarios, comma-separated (each is measured)",
    )
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument(
        "--reuse", type=Path, help="workspace directory: built there once, then reused"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    parser.add_argument(
        "--only",
        type=lambda text: text.split(","),
        default=list(KINDS),
        help=f"scenario kinds to measure, comma-separated, of {', '.join(KINDS)} (default: all)",
    )
    parser.add_argument(
        "--servers",
        type=lambda text: text.split(","),
        default=list(SERVERS),
        help="servers to measure, comma-separated, of arscore, mlflow (default: both)",
    )
    args = parser.parse_args()
    for option, given, known in (
        ("--only", args.only, KINDS),
        ("--servers", args.servers, SERVERS),
    ):
        unknown = sorted(set(given) - set(known))
        if unknown:
            parser.error(
                f"{option}: unknown {', '.join(unknown)}; expected some of {', '.join(known)}"
            )
    return args


def main() -> int:
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    root = args.reuse or Path(tempfile.mkdtemp(prefix="arscore-bench-serving-"))
    workspace = Workspace(root.resolve())
    try:
        return run(workspace, args)
    finally:
        if args.reuse is None and not args.keep:
            shutil.rmtree(workspace.root, ignore_errors=True)


def run(workspace: Workspace, args: argparse.Namespace) -> int:
    """Build (or reuse) the workspace, then measure each server in turn and report."""
    workspace.root.mkdir(parents=True, exist_ok=True)
    if (workspace.root / WORKSPACE_MARKER).exists():
        print(f"reusing the workspace in {workspace.root}")
    else:
        print(f"building the `make demo` model in {workspace.root}")
        build_workspace(workspace)
    summary, input_columns = model_summary(workspace)
    print(summary)
    bodies = write_bodies(workspace, input_columns)
    token = scorer_token(workspace)
    every = scenarios(bodies, token, args)
    plan = {
        server: [s for s in planned if s.kind in args.only]
        for server, planned in every.items()
        if server in args.servers
    }
    workers = str(args.workers)
    servers = {
        "arscore": Server(
            "arscore",
            [str(BIN / "arscore"), "serve", "--host", "127.0.0.1", "--port", "{port}"]
            + ["--workers", workers, "--model-uri", MODEL_URI],
            "/readyz",
            workspace,
        ),
        "mlflow": Server(
            "mlflow",
            [str(BIN / "mlflow"), "models", "serve", "-m", MODEL_URI, "--env-manager", "local"]
            + ["--host", "127.0.0.1", "--port", "{port}", "--workers", workers],
            "/ping",
            workspace,
        ),
    }
    results: list[Result] = []
    checked: dict[str, list[dict]] = {}
    audit_before = audit_count(workspace)
    speed_before = python_speed_ms()
    servers = {name: server for name, server in servers.items() if name in plan}
    for name, server in servers.items():
        with server.running():
            print(f"{name} server on {server.url} ({args.workers} worker(s)), log {server.log}")
            batch = next(s for s in every[name] if s.kind == "batch")
            checked[name] = check_once(server.url, batch)
            for scenario in plan[name]:
                results.append(measure(server, scenario, args))
    audit_written = audit_count(workspace) - audit_before
    answered = sum(r.ok * r.scenario.claims_per_request for r in results if r.scenario.token)
    audit_ok = audit_written >= answered
    notes = [
        agreement(checked["arscore"], checked["mlflow"])
        if len(checked) == 2
        else "probabilities not compared: one server measured",
        f"audit store: {workspace.database_url} ({audit_durability(workspace)}); "
        f"{audit_written:,} audit records written during the run, "
        f"{'at least' if audit_ok else 'FEWER THAN'} the {answered:,} scores answered in the "
        "measured runs alone",
        f"wrk {args.wrk_threads} threads, {args.duration:g} s per scenario after "
        f"{args.warmup:g} s of warm-up, on the same {os.cpu_count()} cores as the server",
        speed_note(speed_before, python_speed_ms()),
    ]
    print_report(results, servers, notes)
    if args.reuse is None and args.keep:
        print(f"workspace kept: rerun with --reuse {workspace.root}")
    return 1 if any(r.failed for r in results) or not audit_ok else 0


if __name__ == "__main__":
    sys.exit(main())
