"""An unreachable PostgreSQL skips its tests on a developer's machine and fails them in CI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PROBE = """
from tests.serving.conftest import postgres_database, postgres_server, postgres_url  # noqa: F401


def test_needs_postgres(postgres_url):
    assert postgres_url
"""


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends: nothing listens


def _run_probe(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["ARSCORE_TEST_PG_SERVER"] = f"postgresql://postgres@127.0.0.1:{_closed_port()}"
    env["PYTHONPATH"] = str(REPO)
    if ci:
        env["CI"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )


@pytest.mark.parametrize(("ci", "outcome"), [(False, "1 skipped"), (True, "1 error")])
def test_postgres_unreachable_skips_outside_ci_and_fails_in_ci(tmp_path, ci, outcome):
    result = _run_probe(tmp_path, ci)

    assert outcome in result.stdout, result.stdout
    assert (result.returncode != 0) == ci
    if ci:
        assert "CI must run the PostgreSQL tests" in result.stdout


def test_ci_run_postgres_never_answers_exits_nonzero_before_the_tests(tmp_path):
    shims = tmp_path / "bin"
    shims.mkdir()
    for name, body in {
        "pg_isready": "exit 2",  # never answers
        "pg_ctlcluster": "exit 0",
        "make": "echo MAKE-RAN; exit 0",
    }.items():
        shim = shims / name
        shim.write_text(f"#!/usr/bin/env bash\n{body}\n")
        shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}", "CI_PG_WAIT_SECONDS": "1"}

    result = subprocess.run(
        ["bash", str(REPO / ".ci" / "run")], capture_output=True, text=True, env=env, timeout=60
    )

    assert result.returncode != 0
    assert "PostgreSQL did not answer" in result.stderr
    assert "MAKE-RAN" not in result.stdout
