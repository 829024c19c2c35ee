"""The `billrun` executable, run as a user runs it: a subprocess with its own
environment, its own working directory and a fresh BILLRUN_HOME."""

from __future__ import annotations

import fcntl
import json
import os
import re
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from application.shared.app import Billing
from infrastructure.persistence import eventsourcing_environment
from tests.conftest import TEST_SELLER

BILLRUN = Path(sys.executable).with_name("billrun")


@dataclass
class Cli:
    """Runs `billrun` in `cwd` with `env`; `json()` also checks it succeeded."""

    cwd: Path
    env: dict[str, str] = field(default_factory=dict)

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BILLRUN), *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self(*args)
        assert result.returncode == 0, (
            f"billrun {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args).stdout)

    def on_terminal(
        self, *args: str, columns: int = 80, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """`billrun` with stdout and stderr on terminals (pseudo-terminals) `columns`
        wide, as a user at a shell sees it; the output comes back without its colours."""
        return run_on_terminal([str(BILLRUN), *args], self.cwd, self.env, columns, timeout)


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def run_on_terminal(
    argv: list[str], cwd: Path, env: dict[str, str], columns: int, timeout: float
) -> subprocess.CompletedProcess[str]:
    terminals = [os.openpty(), os.openpty()]  # stdout, stderr: each its own terminal
    for _, follower in terminals:
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    chunks: list[list[bytes]] = [[], []]

    def drain(index: int) -> None:
        leader = terminals[index][0]
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the last writer closed its end
                return
            if not data:
                return
            chunks[index].append(data)

    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env={**env, "COLUMNS": str(columns), "TERM": "xterm"},
        stdin=subprocess.DEVNULL,
        stdout=terminals[0][1],
        stderr=terminals[1][1],
    )
    for _, follower in terminals:
        os.close(follower)
    readers = [threading.Thread(target=drain, args=(i,), daemon=True) for i in (0, 1)]
    for reader in readers:
        reader.start()
    try:
        returncode = process.wait(timeout=timeout)
    finally:
        for reader in readers:
            reader.join(timeout=10)
        for leader, _ in terminals:
            os.close(leader)
    stdout, stderr = (
        ANSI_ESCAPE.sub("", b"".join(c).decode(errors="replace")).replace("\r\n", "\n")
        for c in chunks
    )
    return subprocess.CompletedProcess(argv, returncode, stdout, stderr)


def user_environment(home: Path) -> dict[str, str]:
    """The caller's environment without any billrun settings, with a fresh home.

    COLUMNS and LINES are dropped as a shell does not export them: output is
    checked as a program reading a pipe sees it.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("BILLRUN_") and key not in ("COLUMNS", "LINES")
    }
    env["BILLRUN_HOME"] = str(home)
    return env


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Cli:
    """`billrun` against this test's throwaway database."""
    assert BILLRUN.exists(), f"{BILLRUN} is missing: install the project (make install)"
    env = user_environment(tmp_path / "home")
    env["BILLRUN_DATABASE_URL"] = database_url
    env.update(TEST_SELLER)
    return Cli(cwd=tmp_path, env=env)


@pytest.fixture
def store(database_url: str) -> Iterator[Billing]:
    """The event store the CLI writes to, for checking what it wrote (or did not)."""
    app = Billing(eventsourcing_environment(database_url))
    try:
        yield app
    finally:
        app.close()
