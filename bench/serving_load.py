"""A server under load: one arscore or mlflow server process tree on 127.0.0.1, wrk driving a
scenario against it, and what a run measured (rates, latencies, CPU, memory, connections).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from serving_workspace import Workspace

LUA_SCRIPT = Path(__file__).resolve().with_name("serving_wrk.lua")


READY_TIMEOUT_SECONDS = 180.0


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
