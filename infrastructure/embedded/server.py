"""The lifecycle every embedded server shares, and the helpers it is made of."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

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


# --------------------------------------------------------------------------- #
# The managed-server lifecycle
# --------------------------------------------------------------------------- #


class ManagedServer:
    """One embedded server under ``home``: the lifecycle both servers share.

    Find it running (health check) or start it under a file lock (so two first
    starts never race), wait until it is ready, retry on another port if it lost
    its port before binding it, hand out its URL, and stop it on exit only if
    this very entry started it. A subclass says what differs: where it lives,
    how it is started and checked, and which signals stop it.
    """

    name: str
    """As in messages and logs, e.g. "PostgreSQL"."""
    lock_name: str
    """As in the lock's messages, e.g. "NATS"."""
    stop_signal: signal.Signals
    """Asks a running server to shut down cleanly."""
    abort_signal: signal.Signals
    """Stops a server that never became ready (nothing to flush)."""
    not_ready: str
    """What a server that timed out during start-up did not do, for the message."""
    dies_with_parent: bool = False
    """Start it so that it gets SIGTERM when this process dies (`_dying_with_this_process`)."""

    def __init__(self, home: Path, root: Path, described: Path, lock_path: Path) -> None:
        self.home = home
        self.root = root
        """The server's directory under ``home``, created on first use."""
        self.described = described
        """The directory named in messages: the data or store directory."""
        self.log_path = root / "server.log"
        self.lock_path = lock_path

    # What a server says about itself ------------------------------------------

    def locate(self) -> None:
        """Find the server's binaries (raises `EmbeddedServiceError` if missing)."""

    def running_port(self) -> int | None:
        """The port of a live server of ours, started by anyone, else None."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Get ready for a first start, under the lock (e.g. create the cluster)."""

    def pick_port(self) -> int | None:
        """The port to start on; None: the server picks one itself."""
        return None

    def command(self, port: int | None) -> list[str]:
        raise NotImplementedError

    def popen_kwargs(self) -> dict[str, Any]:
        return {}

    def ready_port(self, proc: subprocess.Popen[bytes], port: int | None) -> int | None:
        """The port once the server started by ``proc`` serves, else None (polled)."""
        raise NotImplementedError

    def lost_its_port(self, offset: int) -> bool:
        """Did the server exit because another process took its port first?"""
        return False

    def started(self, proc: subprocess.Popen[bytes], port: int) -> None:
        """Record a server this entry started, under the lock."""

    def ready_for_use(self, port: int) -> None:
        """Make the server usable (e.g. its database), started or reused, under the lock."""

    def url(self, port: int) -> str:
        raise NotImplementedError

    def entered(self, url: str, proc: subprocess.Popen[bytes] | None) -> None:
        """The URL is about to be handed out."""

    def leaving(self, url: str) -> None:
        """The URL is no longer in use here."""

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop the server this entry started, under the lock."""
        _stop_process(proc, self.name, self.stop_signal, self.log_path)

    # The lifecycle ----------------------------------------------------------------

    def start(self) -> tuple[subprocess.Popen[bytes], int]:
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            chosen = self.pick_port()
            offset = _log_size(self.log_path)
            started = time.monotonic()
            command = self.command(chosen)
            if self.dies_with_parent:
                command = _dying_with_this_process(command)
            with _open_log(self.log_path) as log:
                proc = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # Own session: a Ctrl-C in the terminal reaches us, and we
                    # decide whether the shared server goes down, not the tty.
                    start_new_session=True,
                    **self.popen_kwargs(),
                )
            try:
                port = self._wait_ready(proc, chosen, started + _START_TIMEOUT_S)
            except BaseException:
                # e.g. KeyboardInterrupt mid-wait: do not leave an orphan behind.
                _stop_process(proc, self.name, self.abort_signal, self.log_path)
                raise
            if port is not None:
                logger.info(
                    "started %s (pid %d) for %s on %s:%d in %.2fs",
                    self.name,
                    proc.pid,
                    self.described,
                    _LOOPBACK,
                    port,
                    time.monotonic() - started,
                )
                return proc, port
            if proc.poll() is None:
                _stop_process(proc, self.name, self.abort_signal, self.log_path)
                raise _failure(
                    f"{self.name} for {self.described} {self.not_ready} within "
                    f"{_START_TIMEOUT_S:.0f}s",
                    self.log_path,
                    offset,
                )
            if self.lost_its_port(offset) and attempt < _PORT_ATTEMPTS:
                logger.info("port %s was taken before %s bound it; retrying", chosen, self.name)
                continue
            raise _failure(
                f"{self.name} for {self.described} exited with code {proc.returncode} "
                "during start-up",
                self.log_path,
                offset,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_ready(
        self, proc: subprocess.Popen[bytes], chosen: int | None, deadline: float
    ) -> int | None:
        """The port once ready; None if the server exited or the deadline passed."""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return None
            port = self.ready_port(proc, chosen)
            if port is not None:
                return port
            time.sleep(_POLL_INTERVAL_S)
        return None

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Run (or reuse) the server; yield its URL; stop it on exit if started here."""
        proc: subprocess.Popen[bytes] | None = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.locate()
            with _file_lock(self.lock_path, self.lock_name):
                port = self.running_port()
                if port is None:
                    self.prepare()
                    proc, port = self.start()
                else:
                    logger.info(
                        "reusing %s for %s on %s:%d", self.name, self.described, _LOOPBACK, port
                    )
                try:
                    if proc is not None:
                        self.started(proc, port)
                    self.ready_for_use(port)
                except BaseException:
                    if proc is not None:
                        _stop_process(proc, self.name, self.stop_signal, self.log_path)
                    raise
        except OSError as exc:
            raise _failure(
                f"could not start {self.name} under {self.root}: {exc}", self.log_path
            ) from exc

        url = self.url(port)
        self.entered(url, proc)
        try:
            yield url
        finally:
            self.leaving(url)
            if proc is not None:
                # Under the lock so a concurrent entry never sees a half-stopped
                # server: it either reuses it before we begin, or starts a fresh
                # one once the old one's records are gone.
                with _file_lock(self.lock_path, self.lock_name, best_effort=True):
                    self.stop(proc)
