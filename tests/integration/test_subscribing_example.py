"""The Python subscriber of docs/subscribing.md, run as written against a real NATS
server: it reads what is there, stays up once it has caught up (a fetch that
finds nothing is not fatal), picks up what comes later, and stops cleanly."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from application.shared.app import Billing
from infrastructure.messaging import StreamNames
from infrastructure.relay import NotificationLog, Relay, RelayPositions
from tests.conftest import account, import_accounts, package
from tests.integration.helpers import REPO_ROOT
from tests.integration.test_consumers import bill
from tests.integration.test_public_contract import public_count

EXAMPLE_MARK = "<!-- example: subscriber -->"


def documented_example() -> str:
    text = (REPO_ROOT / "docs" / "subscribing.md").read_text()
    after = text.split(EXAMPLE_MARK, 1)[1]
    found = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    assert found, "the subscriber example is missing from docs/subscribing.md"
    return found.group(1)


def relay(billing: Billing, url: str, names: StreamNames) -> None:
    source = NotificationLog(billing.recorder)  # type: ignore[arg-type]
    positions = RelayPositions(source.datastore)
    positions.create_table()
    asyncio.run(Relay(source, positions, url, names).run())


class Lines:
    """The subscriber's stdout, collected by a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, count: int, process: subprocess.Popen[str], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.lines) < count:
            assert process.poll() is None, f"the subscriber died: {process.returncode}"
            assert time.monotonic() < deadline, f"{len(self.lines)} of {count} events arrived"
            time.sleep(0.1)


def test_the_documented_subscriber_keeps_running_after_catching_up(
    billing: Billing, nats_server: str, streams: StreamNames, tmp_path: Path
) -> None:
    script = tmp_path / "subscriber.py"
    script.write_text(documented_example())
    bill(billing)
    relay(billing, nats_server, streams)
    first = public_count(billing)
    env = {
        **os.environ,
        "NATS_URL": nats_server,
        "BILLRUN_STREAM": streams.stream,
        "BILLRUN_SUBJECTS": f"{streams.subject_prefix}.>",
        "DURABLE": f"example-{secrets.token_hex(3)}",
    }
    errors = (tmp_path / "stderr").open("w")
    process = subprocess.Popen(
        [sys.executable, str(script)], cwd=REPO_ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=errors,
    )  # fmt: skip
    try:
        lines = Lines(process)
        lines.wait_for(first, process)
        time.sleep(5)  # caught up: several empty fetches in a row
        assert process.poll() is None, "the subscriber must outlive an empty fetch"

        import_accounts(billing, account("LATE-1", package(amount="10.00")))
        relay(billing, nats_server, streams)
        total = public_count(billing)
        assert total > first
        lines.wait_for(total, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
            errors.close()

    assert process.returncode == 0, (tmp_path / "stderr").read_text()
    ids = [line.split()[0] for line in lines.lines]
    assert len(ids) == len(set(ids)) == total, "each event once"
    closed = [line for line in lines.lines if "billrun.invoice.closed.v1" in line]
    assert closed and all(re.search(r" INV-\d{8} \d+\.\d+ [A-Z]{3}$", c) for c in closed)
