"""Fixtures that start discarr's processes for real, on free loopback ports.

Each process is `python -m services NAME` with its own environment; its
output goes to a file in the test's tmp_path, shown when a test fails. Every
wait has a deadline, and every process is stopped (SIGTERM, then SIGKILL).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import requests

from common.clock import ManualClock
from services.tracker.history import DetectionConfig
from services.tracker.state import Tracker

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# What each process logs once its sockets are bound; a process that exits instead is the test's to judge.
LISTENING_LINES = {"tracker": b"tracker listening", "poller": b"removal requests on"}


class Deployment:
    """The environment of one discarr installation, and its running processes."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.simarr_port = free_port()
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONUNBUFFERED": "1",
            "SIMARR_PORT": str(self.simarr_port),
            "TRACKER_INGEST_ENDPOINT": f"tcp://127.0.0.1:{free_port()}",
            "TRACKER_QUERY_ENDPOINT": f"tcp://127.0.0.1:{free_port()}",
            "POLLER_COMMAND_ENDPOINT": f"tcp://127.0.0.1:{free_port()}",
            "TRACKER_STATE_FILE": str(workdir / "data" / "tracker.msgpack"),
            "AUDIT_LOG": str(workdir / "data" / "removals.jsonl"),
            "REQUEST_TIMEOUT_SECONDS": "3",
            "POLL_INTERVAL_SECONDS": "0.5",
            "LOG_LEVEL": "DEBUG",
        }
        self.processes: dict[str, subprocess.Popen] = {}

    def simulate(self, *kinds: str) -> None:
        """Configure one simarr instance per kind, at /<kind> on simarr's port."""
        for kind in kinds:
            self.env[f"{kind.upper()}_URL"] = f"http://127.0.0.1:{self.simarr_port}/{kind}"
            self.env[f"{kind.upper()}_API_KEY"] = f"key-{kind}"

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def start(self, name: str, *args: str, alias: str | None = None,
              env: dict[str, str | None] | None = None) -> subprocess.Popen:
        """Start `discarr NAME`; `alias` names a second process of one kind, `env` changes (None unsets)."""
        alias = alias or name
        environment = dict(self.env)
        for key, value in (env or {}).items():
            if value is None:
                environment.pop(key, None)
            else:
                environment[key] = value
        log = open(self.log_path(alias), "ab")
        logged_before = log.tell()
        process = subprocess.Popen([sys.executable, "-m", "services", name, *args], env=environment,
                                   cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.processes[alias] = process
        if name == "simarr":
            wait_until(self._simarr_up, 20, "simarr to listen")
        elif name in LISTENING_LINES:
            # A request sent before the process binds would find nobody there: wait, as a user would.
            wait_until(lambda: process.poll() is not None or LISTENING_LINES[name] in
                       self.log_path(alias).read_bytes()[logged_before:], 30, f"{alias} to listen")
        return process

    def _simarr_up(self) -> bool:
        try:
            requests.get(f"http://127.0.0.1:{self.simarr_port}/", timeout=1)
            return True
        except requests.ConnectionError:
            return False

    def stop(self, name: str, sig: int = signal.SIGTERM) -> int:
        process = self.processes.pop(name)
        process.send_signal(sig)
        try:
            return process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(10)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "services", *args], env=self.env, cwd=self.workdir,
                              capture_output=True, text=True, timeout=timeout)

    def cli_json(self, *args: str) -> dict[str, Any]:
        done = self.cli(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def control(self, kind: str, method: str, path: str, body: Any = None) -> Any:
        """simarr's control API for one simulated instance."""
        url = f"http://127.0.0.1:{self.simarr_port}/{kind}/__simarr__/{path}"
        response = requests.request(method, url, json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
                         for path in sorted(self.workdir.glob("*.log")))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def tracker(clock: ManualClock) -> Tracker:
    """A tracker with the SPEC's default thresholds (120 minutes) on a clock the test moves."""
    return Tracker(DetectionConfig(), clock)


@pytest.fixture
def deployment(tmp_path: Path, request: pytest.FixtureRequest):
    deployment = Deployment(tmp_path)
    yield deployment
    deployment.stop_all()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(deployment.logs())


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
