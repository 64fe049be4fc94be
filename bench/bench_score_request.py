"""Where the CPU of one 1,000-claim score request goes: the app in-process, one request at a time.

Usage: .venv/bin/python bench/bench_score_request.py [--reuse DIR] [--requests 30] [--reasons]
       [--busy-thread]

Builds (or reuses) the workspace of ``bench_serving.py`` (the `make demo` model, its history
loaded, request bodies of open balances), creates a scorer key, and runs the app in this process
under Starlette's TestClient with its lifespan, as ``arscore serve`` configures it (SQLite audit
trail, ``synchronous=FULL``). After two warm-up requests it posts ``--requests`` 1,000-claim
bodies one after the other (without reasons unless ``--reasons``) and prints, per request: the
wall and CPU time of the whole process (server and client), and the wall time of each scoring
stage from ``/metrics``. With one request at a time nothing waits for the GIL, so a stage's
wall time is its CPU time plus its own I/O waits (the audit commit's fsync); "outside them" is
the rest of the wall time (HTTP, the response, the test client).

Unlike ``bench_serving.py`` there is no load generator and no concurrency: this is the floor
that throughput on N cores cannot beat, N / (CPU per request) requests per second.

``--busy-thread`` runs a thread that only computes in this process meanwhile, as a second request
of the same server worker would. Each time a stage lets go of the GIL (a database step, a hash of
2 KB or more, a LightGBM call) it may then wait up to the switch interval (5 ms) to get it back:
the stage wall times show where. CPU times then include the busy thread's, so no floor is given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import serving_workspace as serving_bench
from busy_thread import busy_thread
from machine import python_speed_ms, speed_note


def stage_sums(text: str) -> dict[str, float]:
    """Seconds per stage so far, from the Prometheus text of ``/metrics``."""
    found = {}
    for line in text.splitlines():
        if line.startswith("arscore_scoring_stage_seconds_sum{"):
            stage = line.split('stage="', 1)[1].split('"', 1)[0]
            found[stage] = float(line.rsplit(" ", 1)[1])
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", type=Path, help="bench_serving.py workspace (built if absent)")
    parser.add_argument("--requests", type=int, default=30, help="requests measured")
    parser.add_argument("--reasons", action="store_true", help="ask for reasons (TreeSHAP)")
    parser.add_argument(
        "--busy-thread", action="store_true", help="a computing thread beside the requests"
    )
    args = parser.parse_args()
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    root = (args.reuse or Path(tempfile.mkdtemp(prefix="arscore-bench-request-"))).resolve()
    workspace = serving_bench.Workspace(root)
    root.mkdir(parents=True, exist_ok=True)
    if not (root / serving_bench.WORKSPACE_MARKER).exists():
        print(f"building the `make demo` model in {root}")
        serving_bench.build_workspace(workspace)
    _, input_columns = serving_bench.model_summary(workspace)
    written = serving_bench.write_bodies(workspace, input_columns)
    token = serving_bench.scorer_token(workspace)
    path = written.arscore_batch_reasons if args.reasons else written.arscore_batch
    bodies = path.read_text().splitlines()

    os.environ.update({k: v for k, v in workspace.env().items() if k.startswith("ARSCORE_")})
    os.environ["ARSCORE_ACCESS_LOG"] = "false"
    os.chdir(root)
    from fastapi.testclient import TestClient

    from serving.api.app import create_app
    from serving.settings import get_settings

    get_settings.cache_clear()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with TestClient(create_app()) as client:

        def post(body: str) -> None:
            response = client.post("/v1/scores", content=body, headers=headers)
            if response.status_code != 200:
                sys.exit(f"POST /v1/scores: status {response.status_code}: {response.text[:500]}")

        for body in bodies[:2]:
            post(body)
        before = stage_sums(client.get("/metrics").text)
        speed_before = python_speed_ms()
        with busy_thread(args.busy_thread):
            wall, cpu = time.perf_counter(), time.process_time()
            for number in range(args.requests):
                post(bodies[number % len(bodies)])
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        after = stage_sums(client.get("/metrics").text)
    per_request = {k: 1000 * (after[k] - before.get(k, 0.0)) / args.requests for k in after}
    claims = len(json.loads(bodies[0])["items"])
    kind = "with reasons" if args.reasons else "without reasons"
    beside = ", beside a busy thread" if args.busy_thread else ""
    print(f"\n{args.requests} requests of {claims:,} claims {kind}, one at a time, in-process"
          f"{beside}:")  # fmt: skip
    print(f"  {speed_note(speed_before, python_speed_ms())}")
    if args.busy_thread:
        print(f"  per request: wall {1000 * wall / args.requests:.1f} ms")
    else:
        print(f"  per request: wall {1000 * wall / args.requests:.1f} ms, "
              f"CPU {1000 * cpu / args.requests:.1f} ms")  # fmt: skip
    for stage, ms in sorted(per_request.items(), key=lambda item: -item[1]):
        print(f"  {stage:14s} {ms:7.1f} ms")
    staged = sum(per_request.values())
    print(f"  {'outside them':14s} {1000 * wall / args.requests - staged:7.1f} ms (wall)")
    if args.busy_thread:
        return 0
    print(f"floor on {os.cpu_count()} cores: {os.cpu_count() * claims * args.requests / cpu:,.0f} "
          "claims/s (cores x claims / CPU seconds)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
