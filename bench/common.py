"""Helpers shared by the benchmarks: the PostgreSQL server and a throwaway
database, the machine's description, and memory measurements."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from infrastructure.database import create_database, drop_database

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024


def log(message: str) -> None:
    """Progress goes to stderr, so `--json` keeps stdout to one JSON object."""
    print(message, file=sys.stderr, flush=True)


# PostgreSQL ---------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    url: str
    source: str
    """"BILLRUN_DATABASE_URL" or "embedded"."""


@contextlib.contextmanager
def postgres_server() -> Iterator[Server]:
    """BILLRUN_DATABASE_URL's server if set, else an embedded PostgreSQL under a
    temporary BILLRUN_HOME that is stopped and deleted afterwards."""
    url = os.environ.get("BILLRUN_DATABASE_URL")
    if url:
        yield Server(url, "BILLRUN_DATABASE_URL")
        return
    from infrastructure.embedded import embedded_postgres

    home = Path(tempfile.mkdtemp(prefix="billrun-bench-"))
    try:
        log(f"starting an embedded PostgreSQL under {home}")
        with embedded_postgres(home) as embedded_url:
            yield Server(embedded_url, "embedded")
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def throwaway_database(server_url: str, prefix: str = "billrun_bench") -> Iterator[str]:
    """A fresh database on the server, dropped afterwards whatever happens."""
    url = create_database(server_url, prefix)
    try:
        yield url
    finally:
        drop_database(url)


def postgres_info(url: str) -> dict[str, Any]:
    """The server's version and the settings that decide write throughput."""
    settings = ("shared_buffers", "synchronous_commit", "fsync", "wal_level", "max_wal_size")
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        info: dict[str, Any] = {"version": row[0] if row else "?"}
        for name in settings:
            value = conn.execute(f"SHOW {name}").fetchone()
            info[name] = value[0] if value else "?"
    params = conninfo_to_dict(url)
    info["host"] = f"{params.get('host', '?')}:{params.get('port', 5432)}"
    return info


def settle(url: str, tables: list[str]) -> None:
    """ANALYZE the tables and CHECKPOINT (best effort), so the timed section does
    not start with stale planner statistics or the setup's dirty buffers."""
    with psycopg.connect(url, autocommit=True) as conn:
        for table in tables:
            conn.execute(f"ANALYZE {table}")
        with contextlib.suppress(psycopg.Error):
            conn.execute("CHECKPOINT")  # needs superuser or pg_checkpoint


# Machine ------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "ram_gb": round(_meminfo_kb("MemTotal") / MB, 1),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": dt.datetime.now(tz=dt.UTC).isoformat(timespec="seconds"),
    }


def source_revision() -> dict[str, Any]:
    """The commit benchmarked, and whether tracked files differed from it (read-only
    git commands: `--no-optional-locks` keeps `status` from touching the index)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "modified_files": None}
    return {"commit": commit, "modified_files": len(changes.splitlines())}


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def _meminfo_kb(key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    return 0


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


# Memory -------------------------------------------------------------------------


def cpu_seconds() -> float:
    """User plus system CPU time of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """The process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    statm = Path("/proc/self/statm").read_text().split()
    return int(statm[1]) * _PAGE_SIZE / MB


class RssSampler:
    """Samples this process's RSS in a thread, for the peak of one section alone
    (ru_maxrss only knows the peak since the process started)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.start_mb = 0.0
        self.peak_mb = 0.0
        self.end_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> RssSampler:
        self.start_mb = self.peak_mb = current_rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.end_mb = current_rss_mb()
        self.peak_mb = max(self.peak_mb, self.end_mb)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, current_rss_mb())


class WaitSampler:
    """What the database's client backends are doing, sampled every `interval`
    seconds from one connection of its own while a block runs: per sample, each
    active backend's wait (`Lock:relation` is a writer queued on the events
    table's lock, `Client:ClientRead` a backend waiting for its client, `CPU`
    none), and whether any backend waited on a lock at all."""

    QUERY = (
        "SELECT coalesce(wait_event_type, 'CPU') || ':' || coalesce(wait_event, '-') "
        "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND backend_type = 'client backend' AND state <> 'idle'"
    )

    def __init__(self, url: str, interval: float = 0.05) -> None:
        self.url = url
        self.interval = interval
        self.samples = 0
        self.lock_samples = 0
        self.waits: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> WaitSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.wait(self.interval):
                waits = [row[0] for row in conn.execute(self.QUERY).fetchall()]
                self.samples += 1
                self.lock_samples += any(w.startswith("Lock:") for w in waits)
                for wait in waits:
                    self.waits[wait] = self.waits.get(wait, 0) + 1

    def summary(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "share_with_a_lock_wait": round(self.lock_samples / max(self.samples, 1), 3),
            "backend_waits": dict(sorted(self.waits.items(), key=lambda kv: -kv[1])),
        }


class GcTimer:
    """Collections by generation, and the CPU seconds spent in them, inside a block
    (thread CPU time, so being descheduled on a busy machine does not count)."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            generation = info["generation"]
            self.collections[generation] += 1
            self.seconds[generation] += time.thread_time() - self._started


@contextlib.contextmanager
def stopwatch() -> Iterator[list[float]]:
    """`with stopwatch() as elapsed:` ... `elapsed[0]` holds the seconds afterwards."""
    elapsed = [0.0]
    started = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed[0] = time.perf_counter() - started
