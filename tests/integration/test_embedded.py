"""Integration tests for infrastructure.embedded: real PostgreSQL and nats-server processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from infrastructure.embedded import EmbeddedServiceError, embedded_nats, embedded_postgres

REPO_ROOT = Path(__file__).resolve().parents[2]

# A child process that enters a context manager, reports the URL, and holds
# the server until its stdin closes; used to exercise cross-process reuse.
CHILD_SCRIPT = """
import sys
from pathlib import Path
from infrastructure.embedded import {name}
with {name}(Path(sys.argv[1])) as url:
    print(url, flush=True)
    sys.stdin.read()
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # An unreaped zombie still answers kill(0) but is not running.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _postmaster_pid(home: Path) -> int:
    return int((home / "postgres" / "data" / "postmaster.pid").read_text().splitlines()[0])


def _nats_info(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        line = sock.makefile("rb").readline()
    assert line.startswith(b"INFO "), line
    info: dict[str, Any] = json.loads(line[5:])
    return info


def _spawn_child(name: str, home: Path) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-c", CHILD_SCRIPT.format(name=name), str(home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO_ROOT,
        env=env,
        text=True,
    )


def _finish_child(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.close()
    assert child.wait(timeout=30) == 0


def test_postgres_starts_reuses_and_stops(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with embedded_postgres(home) as url:
        assert url.startswith("postgresql://postgres@127.0.0.1:")
        assert url.endswith("/billrun")
        with psycopg.connect(url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            conn.execute("create table kept (x int)")
            conn.execute("insert into kept values (42)")
        pid = _postmaster_pid(home)

        with embedded_postgres(home) as again:
            assert again == url
            assert _postmaster_pid(home) == pid
        assert _alive(pid), "a reusing entry must not stop the server it did not start"

    assert _wait_gone(pid)
    assert (home / "postgres" / "server.log").stat().st_size > 0

    # The cluster survives a restart: no second initdb, data still there.
    with embedded_postgres(home) as url, psycopg.connect(url) as conn:
        assert conn.execute("select x from kept").fetchone() == (42,)
        pid = _postmaster_pid(home)
    assert _wait_gone(pid)


def test_postgres_reused_by_another_process(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with embedded_postgres(home) as url:
        pid = _postmaster_pid(home)
        child = _spawn_child("embedded_postgres", home)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == url
        _finish_child(child)
        assert _alive(pid), "the child only reused the server and must leave it running"
        with psycopg.connect(url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    assert _wait_gone(pid)


def test_postgres_concurrent_first_start_is_serialised(tmp_path: Path) -> None:
    home = tmp_path / "home"
    children = [_spawn_child("embedded_postgres", home) for _ in range(2)]
    urls = []
    for child in children:
        assert child.stdout is not None
        urls.append(child.stdout.readline().strip())
    assert urls[0] == urls[1] != ""
    pid = _postmaster_pid(home)
    # The lock made the loser reuse the winner's cluster: one initdb, one server.
    log = (home / "postgres" / "server.log").read_text()
    assert log.count("syncing data to disk") == 1
    assert log.count("ready to accept connections") == 1
    for child in children:
        _finish_child(child)
    assert _wait_gone(pid)


def test_postgres_reports_unusable_data_dir(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "postgres" / "data").mkdir(parents=True)
    (home / "postgres" / "data" / "junk").write_text("not a cluster")
    with (
        pytest.raises(EmbeddedServiceError, match="not a PostgreSQL cluster"),
        embedded_postgres(home),
    ):
        pass


def test_nats_starts_reuses_and_stops(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with embedded_nats(home) as url:
        assert url.startswith("nats://127.0.0.1:")
        info = _nats_info(url)
        assert info["jetstream"] is True
        port = urlsplit(url).port
        assert (home / "nats" / "nats.port").read_text().strip() == str(port)
        pid = int((home / "nats" / "nats.pid").read_text())

        with embedded_nats(home) as again:
            assert again == url
        assert _alive(pid), "a reusing entry must not stop the server it did not start"

        child = _spawn_child("embedded_nats", home)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == url
        _finish_child(child)
        assert _alive(pid)
        assert _nats_info(url)["server_id"] == info["server_id"]

    assert _wait_gone(pid)
    assert (home / "nats" / "jetstream").is_dir()
    assert not (home / "nats" / "nats.port").exists()
