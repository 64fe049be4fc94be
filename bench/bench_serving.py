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
import datetime as dt
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd
import psutil
from machine import python_speed_ms, speed_note

BIN = Path(sys.executable).parent
LUA_SCRIPT = Path(__file__).resolve().with_name("serving_wrk.lua")
WORKSPACE_MARKER = "bench_workspace.json"
MODEL_URI = "models:/arscore@champion"
DEMO_CLAIMS, DEMO_SEED = 20_000, 7
SINGLE_POOL = 200
BATCH_ITEMS = 1_000
GOAL_SINGLE_RATIO, GOAL_BATCH_CLAIMS = 2.0, 20_000
KINDS = ("single", "batch", "batch_reasons")
SERVERS = ("arscore", "mlflow")
READY_TIMEOUT_SECONDS = 180.0
SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


@dataclass(frozen=True)
class Workspace:
    """Where one bench run keeps its history, registry, audit database and request bodies."""

    root: Path

    @property
    def history(self) -> Path:
        return self.root / "history"

    @property
    def key_file(self) -> Path:
        return self.root / "var" / "secrets" / "pseudonym.key"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.root / 'var' / 'arscore.db'}"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'models' / 'mlflow.db'}"

    def env(self) -> dict[str, str]:
        """The caller's environment without ARSCORE_/MLFLOW_ settings, pointed at this workspace
        (the venv's bin first on PATH: `mlflow models serve` runs `uvicorn` from PATH)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ARSCORE_", "MLFLOW_"))}
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
        env["ARSCORE_PSEUDONYM_KEY_FILE"] = str(self.key_file)
        env["ARSCORE_DATABASE_URL"] = self.database_url
        env["ARSCORE_MLFLOW_TRACKING_URI"] = self.tracking_uri
        env["MLFLOW_TRACKING_URI"] = env["MLFLOW_REGISTRY_URI"] = self.tracking_uri
        return env


def run_cli(workspace: Workspace, *args: str) -> str:
    """Run a command in the workspace (its directory is the current one); its stdout, or exit."""
    result = subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=workspace.root,
        env=workspace.env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-3000:]
        sys.exit(f"`{' '.join(args)}` failed with exit code {result.returncode}:\n{tail}")
    return result.stdout


def build_workspace(workspace: Workspace) -> None:
    """The model `make demo` builds: the same commands, inside the workspace."""
    workspace.key_file.parent.mkdir(parents=True, exist_ok=True)
    workspace.key_file.write_text(secrets.token_hex(32))
    workspace.key_file.chmod(0o600)
    steps = [
        ("generate", "--claims", str(DEMO_CLAIMS), "--seed", str(DEMO_SEED), "--out", "history"),
        ("dataset", "--history", "history", "--out", "dataset.parquet"),
        ("train", "--snapshots", "dataset.parquet"),
        ("promote", "challenger", "--reason", "bench_serving: the make demo model"),
        ("load", "--history", "history"),
    ]
    for step in steps:
        started = time.perf_counter()
        run_cli(workspace, "arscore", *step)
        print(f"  arscore {step[0]:9s} {time.perf_counter() - started:6.1f} s", flush=True)
    marker = {"claims": DEMO_CLAIMS, "seed": DEMO_SEED, "built_at": dt.datetime.now().isoformat()}
    (workspace.root / WORKSPACE_MARKER).write_text(json.dumps(marker))


def scorer_token(workspace: Workspace) -> str:
    """A new scorer API key's token (`arscore keys create`, as scripts/demo_serve.sh does)."""
    output = run_cli(workspace, "arscore", "keys", "create", "--role", "scorer", "--label", "bench")
    return next(line.split()[1] for line in output.splitlines() if line.startswith("token:"))


def open_balances(workspace: Workspace) -> tuple[pd.DataFrame, pd.Timestamp]:
    """Snapshot rows of every open balance as of the history's last day, and that day."""
    from features.history import read_history
    from features.snapshots import build_snapshots

    history = read_history(workspace.history, workspace.key_file.read_bytes().strip())
    as_of = pd.Timestamp(history.transactions["date"].max()).normalize()
    rows = build_snapshots(history, [as_of], labels=None)
    return rows.sample(frac=1.0, random_state=DEMO_SEED).reset_index(drop=True), as_of


def _json_value(value: object) -> object:
    """A history value as JSON: dates ISO, numbers as numbers, missing values left out."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if isinstance(value, float):
        return round(value, 2)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _numpy_item(value: object) -> object:
    """A numpy scalar as the Python value json writes exactly (floats round-trip in full)."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def score_items(history_dir: Path, claim_ids: list[str], as_of: pd.Timestamp) -> list[dict]:
    """POST /v1/scores items: each claim as exported (raw patient_id, pseudonymized by the
    server) with its transactions up to the as-of date."""
    from features.history import find_table, read_raw

    claims = read_raw(find_table(history_dir, "claims")).set_index("claim_id", drop=False)
    transactions = read_raw(find_table(history_dir, "transactions"))
    transactions = transactions[transactions["claim_id"].isin(claim_ids)]
    transactions = transactions[pd.to_datetime(transactions["date"]) <= as_of]
    by_claim = {k: g.drop(columns="claim_id") for k, g in transactions.groupby("claim_id")}
    items = []
    for claim_id in claim_ids:
        item = {k: _json_value(v) for k, v in claims.loc[claim_id].items()}
        events = by_claim.get(claim_id, transactions.iloc[:0])
        item["transactions"] = [
            {k: v for k, v in ((k, _json_value(v)) for k, v in row.items()) if v is not None}
            for row in events.to_dict("records")
        ]
        items.append({k: v for k, v in item.items() if v is not None})
    return items


@dataclass(frozen=True)
class Bodies:
    """Request body files (one JSON body a line) and the claims each body holds."""

    arscore_single: Path
    arscore_batch: Path
    arscore_batch_reasons: Path
    mlflow_single: Path
    mlflow_batch: Path
    batch_items: int


def write_bodies(workspace: Workspace, input_columns: list[str]) -> Bodies:
    """The single-claim pool and the 1,000-claim batches, for both servers, on the same claims
    (as many distinct batches as there are open balances, at least one)."""
    rows, as_of = open_balances(workspace)
    n_batches = max(1, len(rows) // BATCH_ITEMS)
    batch_items = min(BATCH_ITEMS, len(rows))
    wanted = rows.iloc[: max(n_batches * batch_items, SINGLE_POOL)]
    items = score_items(workspace.history, wanted["claim_id"].astype(str).tolist(), as_of)
    model_input = wanted[input_columns].astype(object)
    model_rows = model_input.where(model_input.notna(), None).to_numpy().tolist()
    directory = workspace.root / "bodies"
    directory.mkdir(exist_ok=True)
    iso = as_of.date().isoformat()

    def write(name: str, bodies: list[dict]) -> Path:
        path = directory / f"{name}.jsonl"
        lines = (json.dumps(b, separators=(",", ":"), default=_numpy_item) + "\n" for b in bodies)
        path.write_text("".join(lines))
        return path

    def scores(first: int, n: int, reasons: bool) -> dict:
        return {"as_of": iso, "reasons": reasons, "items": items[first : first + n]}

    def frame(first: int, n: int) -> dict:
        return {
            "dataframe_split": {"columns": input_columns, "data": model_rows[first : first + n]}
        }

    starts = [i * batch_items for i in range(n_batches)]
    bodies = Bodies(
        arscore_single=write("arscore_single", [scores(i, 1, True) for i in range(SINGLE_POOL)]),
        arscore_batch=write("arscore_batch", [scores(i, batch_items, False) for i in starts]),
        arscore_batch_reasons=write(
            "arscore_batch_reasons", [scores(i, batch_items, True) for i in starts]
        ),
        mlflow_single=write("mlflow_single", [frame(i, 1) for i in range(SINGLE_POOL)]),
        mlflow_batch=write("mlflow_batch", [frame(i, batch_items) for i in starts]),
        batch_items=batch_items,
    )
    print(
        f"request bodies: {len(rows):,} open balances as of {iso}; {SINGLE_POOL} single-claim "
        f"bodies, {n_batches} distinct {batch_items:,}-claim batches; "
        f"{bodies.arscore_batch.stat().st_size / n_batches / 2**20:.1f} MiB per arscore batch, "
        f"{bodies.mlflow_batch.stat().st_size / n_batches / 2**20:.1f} MiB per mlflow batch"
    )
    return bodies


def free_port() -> int:
    """A TCP port nobody listens on right now, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A server process (its own process group) with a sampled peak RSS of its process tree."""

    name: str
    command: list[str]
    ready_path: str
    workspace: Workspace
    port: int = field(default_factory=free_port)
    peak_rss: int = 0
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workspace.root / f"{self.name}-server.log"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    @contextmanager
    def running(self) -> Iterator[Server]:
        """Start, wait until ready, yield; SIGTERM (then SIGKILL) the process group after."""
        command = [part.replace("{port}", str(self.port)) for part in self.command]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.workspace.root,
                env=self.workspace.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        stop = threading.Event()
        sampler = threading.Thread(target=self._sample_rss, args=(stop,), daemon=True)
        sampler.start()
        try:
            self._wait_ready()
            yield self
        finally:
            stop.set()
            self._stop()
            sampler.join()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(
                    f"{self.name} server exited with code {self.process.returncode} before it "
                    f"was ready; log tail ({self.log}):\n{self.log_tail()}"
                )
            try:
                if httpx.get(self.url + self.ready_path, timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        sys.exit(
            f"{self.name} server not ready at {self.url}{self.ready_path} after "
            f"{READY_TIMEOUT_SECONDS:.0f} s; log tail ({self.log}):\n{self.log_tail()}"
        )

    def wait_idle(self, timeout: float = 120.0) -> None:
        """Wait until the server's processes use under a fifth of a core: requests of a run
        that wrk stopped waiting for are finished before the next run is timed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = self._cpu_seconds()
            time.sleep(0.5)
            if self._cpu_seconds() - before < 0.1:
                return
        print(f"  {self.name} server still busy after {timeout:.0f} s; measuring anyway")

    def _cpu_seconds(self) -> float:
        root = psutil.Process(self.process.pid)
        total = 0.0
        for process in [root, *root.children(recursive=True)]:
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
        return total

    def _sample_rss(self, stop: threading.Event) -> None:
        while not stop.wait(0.2):
            try:
                root = psutil.Process(self.process.pid)
                tree = [root, *root.children(recursive=True)]
                self.peak_rss = max(self.peak_rss, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass

    def connections_per_process(self) -> list[int]:
        """Established client connections to the server's port held by each process of its tree
        that holds any, most first: with several workers sharing one listening socket, the kernel
        hands each new connection to whichever worker accepts first, so at low concurrency one
        worker may hold them all while the other idles."""
        counts = []
        try:
            root = psutil.Process(self.process.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return []
        for process in tree:
            try:
                held = process.net_connections(kind="tcp")
            except psutil.Error:
                continue
            mine = [
                c for c in held if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == self.port
            ]
            if mine:
                counts.append(len(mine))
        return sorted(counts, reverse=True)

    def _stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL to what is left after 20 s; returns
        once every process of the tree has exited."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            root = psutil.Process(self.process.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            tree = []
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            _, alive = psutil.wait_procs(tree, timeout=wait)
            if not alive:
                break
        self.process.wait(10)


@dataclass(frozen=True)
class Scenario:
    """One measured load: which server, route, bodies, claims per body, connections."""

    kind: str
    name: str
    server: str
    path: str
    bodies: Path
    claims_per_request: int
    connections: int
    token: str = ""


@dataclass
class Result:
    """What wrk measured for a scenario (rates count 2xx responses only)."""

    scenario: Scenario
    wrk: dict
    stages_ms: dict[str, float] = field(default_factory=dict)
    placement: list[int] = field(default_factory=list)  # connections per server process

    @property
    def seconds(self) -> float:
        return self.wrk["duration_us"] / 1e6

    @property
    def ok(self) -> int:
        return self.wrk["requests"] - self.wrk["non2xx"]

    @property
    def socket_errors(self) -> int:
        keys = ("connect_errors", "read_errors", "write_errors", "timeouts")
        return sum(self.wrk[k] for k in keys)

    @property
    def problem(self) -> str | None:
        """Why the scenario failed (None: it did not)."""
        w = self.wrk
        if w["non2xx"] or self.socket_errors:
            return (
                f"{w['non2xx']} non-2xx of {w['requests']} responses, {self.socket_errors} socket "
                f"errors ({w['connect_errors']} connect, {w['read_errors']} read, "
                f"{w['write_errors']} write, {w['timeouts']} timeouts); first non-2xx: status "
                f"{w['first_error_status']}, body: {w['first_error_body']}"
            )
        if self.ok == 0:
            return "no response completed within the measured time (raise --duration)"
        return None

    @property
    def failed(self) -> bool:
        return self.problem is not None

    @property
    def requests_per_second(self) -> float:
        return self.ok / self.seconds

    @property
    def claims_per_second(self) -> float:
        return self.requests_per_second * self.scenario.claims_per_request


def run_wrk(url: str, scenario: Scenario, seconds: float, threads: int) -> dict:
    """wrk with the bench's Lua script; the WRK_RESULT line it prints, parsed."""
    command = ["wrk", "-t", str(max(1, min(threads, scenario.connections)))]
    command += ["-c", str(scenario.connections), "-d", f"{max(1, round(seconds))}s"]
    command += ["--timeout", "60s", "-s", str(LUA_SCRIPT), url + scenario.path, "--"]
    command += [str(scenario.bodies), scenario.token]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    found = re.search(r"^WRK_RESULT (.*)$", result.stdout, re.MULTILINE)
    if result.returncode != 0 or found is None:
        sys.exit(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return json.loads(found.group(1))


def check_once(url: str, scenario: Scenario) -> list[dict]:
    """POST the scenario's first body once: status 200 and one result per claim, or exit."""
    body = scenario.bodies.read_text().split("\n", 1)[0]
    headers = {"Content-Type": "application/json"}
    if scenario.token:
        headers["Authorization"] = f"Bearer {scenario.token}"
    response = httpx.post(url + scenario.path, content=body, headers=headers, timeout=120)
    if response.status_code != 200:
        sys.exit(f"{scenario.name}: status {response.status_code}: {response.text[:2000]}")
    payload = response.json()
    results = payload.get("scores", payload.get("predictions"))
    if not isinstance(results, list) or len(results) != scenario.claims_per_request:
        got = len(results) if isinstance(results, list) else type(results).__name__
        sys.exit(f"{scenario.name}: expected {scenario.claims_per_request} results, got {got}")
    return results


def stage_seconds(url: str) -> dict[str, tuple[float, float]]:
    """arscore's /metrics: (sum of seconds, count) of each scoring stage so far."""
    totals: dict[str, list[float]] = {}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        found = re.match(r'arscore_scoring_stage_seconds_(sum|count)\{stage="(\w+)"\} (\S+)', line)
        if found:
            kind, stage, value = found.groups()
            totals.setdefault(stage, [0.0, 0.0])[kind == "count"] = float(value)
    return {stage: (pair[0], pair[1]) for stage, pair in totals.items()}


def measure(server: Server, scenario: Scenario, args: argparse.Namespace) -> Result:
    """Check once, warm up, then measure from idle; arscore's stage times from /metrics (1
    worker: with more, /metrics answers for one worker only)."""
    check_once(server.url, scenario)
    if args.warmup > 0:
        warm = run_wrk(server.url, scenario, args.warmup, args.wrk_threads)
        if warm["non2xx"]:
            print(f"  warm-up of {scenario.name}: {warm['non2xx']} non-2xx of {warm['requests']}")
    server.wait_idle()
    per_stage = scenario.server == "arscore" and args.workers == 1
    before = stage_seconds(server.url) if per_stage else {}
    placement: list[int] = []
    sampler = threading.Timer(
        min(1.0, args.duration / 2), lambda: placement.extend(server.connections_per_process())
    )
    sampler.start()
    try:
        result = Result(scenario, run_wrk(server.url, scenario, args.duration, args.wrk_threads))
    finally:
        sampler.cancel()
        sampler.join()
    result.placement = placement
    server.wait_idle()
    if per_stage:
        after = stage_seconds(server.url)
        for stage, (total, count) in after.items():
            old_total, old_count = before.get(stage, (0.0, 0.0))
            if count > old_count:
                result.stages_ms[stage] = (total - old_total) / (count - old_count) * 1e3
    status = "FAILED" if result.failed else "ok"
    print(
        f"  {scenario.name:42s} {result.requests_per_second:9,.1f} req/s "
        f"{result.claims_per_second:10,.0f} claims/s  p99 {result.wrk['p99_us'] / 1e3:8.1f} ms  "
        f"{status}",
        flush=True,
    )
    return result


def audit_count(workspace: Workspace) -> int:
    """Records in the audit trail (read-only connection)."""
    path = workspace.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        return connection.execute("SELECT count(*) FROM audit_records").fetchone()[0]


def audit_durability(workspace: Workspace) -> str:
    """The journal and synchronous modes of a connection made by serving.store.engine.make_engine,
    the engine factory the server uses for its audit store (the modes are set on every
    connection)."""
    from sqlalchemy import text

    from serving.store.engine import make_engine

    engine = make_engine(workspace.database_url)
    try:
        with engine.connect() as connection:
            journal = connection.execute(text("PRAGMA journal_mode")).scalar()
            synchronous = connection.execute(text("PRAGMA synchronous")).scalar()
    finally:
        engine.dispose()
    return f"journal_mode={journal}, synchronous={SYNCHRONOUS.get(synchronous, synchronous)}"


def model_summary(workspace: Workspace) -> tuple[str, list[str]]:
    """The champion's size (trees, leaves, features) and its input columns."""
    from serving.scoring.loader import load_model

    loaded = load_model(MODEL_URI, workspace.tracking_uri, now=dt.datetime.now(dt.UTC))
    model = loaded.model

    def size(booster: object) -> str:
        trees = booster.dump_model()["tree_info"]
        leaves = max(tree["num_leaves"] for tree in trees)
        return f"{len(trees)} trees (up to {leaves} leaves)"

    summary = (
        f"model {loaded.name} version {loaded.version} ({MODEL_URI}): classifier "
        f"{size(model.booster)}, recovery {size(model.recovery_booster)}, "
        f"{len(model.pipeline.feature_names_)} features"
    )
    return summary, model.input_columns


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
