"""A worker meets a NATS that dies, a second worker and an operator's SIGTERM while
NATS is down: each ends in one clear line and exit 2 (for a supervisor to act
on), never in a retry loop for ever, a traceback or a nats-server left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infrastructure.embedded import embedded_nats
from tests.integration.helpers import BILLRUN, REPO_ROOT


def start_worker(
    database_url: str, home: Path, nats_url: str | None = None
) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.pop("BILLRUN_NATS_URL", None)
    env.update(BILLRUN_DATABASE_URL=database_url, BILLRUN_HOME=str(home), NO_COLOR="1")
    if nats_url is not None:
        env["BILLRUN_NATS_URL"] = nats_url
    return subprocess.Popen(
        [str(BILLRUN), "worker"], cwd=REPO_ROOT, env=env, text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def wait_for(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: it only waits for its parent to reap it.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))


def nats_pid(home: Path) -> int | None:
    text = (home / "nats" / "nats.pid").read_text() if (home / "nats" / "nats.pid").exists() else ""
    return int(text) if text.strip() else None


def relaying(worker: subprocess.Popen[str], home: Path | None = None) -> bool:
    assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
    return home is None or nats_pid(home) is not None


def finished(worker: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str]:
    try:
        code = worker.wait(timeout=timeout)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    return code, worker.stderr.read() if worker.stderr else ""


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for worker in started:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_a_worker_whose_embedded_nats_server_dies_stops_with_one_line_and_exit_2(
    database_url: str, tmp_path: Path, workers: list[subprocess.Popen[str]]
) -> None:
    home = tmp_path / "home"
    workers.append(worker := start_worker(database_url, home))
    wait_for(lambda: relaying(worker, home))
    pid = nats_pid(home)
    assert pid is not None
    time.sleep(2)  # connected and relaying

    os.kill(pid, signal.SIGKILL)
    code, stderr = finished(worker)

    assert code == 2, stderr
    line = one_error_line(stderr)
    assert f"the embedded nats-server (pid {pid}) was killed by SIGKILL" in line
    assert "Start it again" in line


def test_a_worker_killed_with_9_leaves_no_nats_server_behind(
    database_url: str, tmp_path: Path, workers: list[subprocess.Popen[str]]
) -> None:
    home = tmp_path / "home"
    workers.append(worker := start_worker(database_url, home))
    wait_for(lambda: relaying(worker, home))
    pid = nats_pid(home)
    assert pid is not None and alive(pid)

    worker.kill()
    worker.wait()

    wait_for(lambda: not alive(pid), timeout=15)


def test_a_second_worker_and_a_sigterm_while_nats_is_down_each_end_in_one_line_and_exit_2(
    database_url: str, tmp_path: Path, workers: list[subprocess.Popen[str]]
) -> None:
    with embedded_nats(tmp_path / "nats-home") as url:
        workers.append(first := start_worker(database_url, tmp_path / "a", url))
        time.sleep(3)
        assert relaying(first)
        workers.append(second := start_worker(database_url, tmp_path / "b", url))
        code, stderr = finished(second)
        assert code == 2, stderr
        assert "another relay is publishing to stream BILLING" in one_error_line(stderr)

        server = nats_pid(tmp_path / "nats-home")
        assert server is not None
        os.kill(server, signal.SIGKILL)
        time.sleep(1)
        first.send_signal(signal.SIGTERM)
        code, stderr = finished(first)

    assert code == 2, stderr
    line = one_error_line(stderr)
    assert f"stopped while NATS at {url} was unreachable" in line
    assert "nothing is lost" in line
