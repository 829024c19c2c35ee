"""Console sessions: an API key signs in once; a session cookie carries on.

The cookie holds only a random session id (HttpOnly, SameSite=Strict, Secure
when served over HTTPS); the key itself is checked once at sign-in and never
stored. Each session has its own CSRF token, which every form and every
script-made write must send back: SameSite already keeps other sites' forms
out, the token also refuses a write that did not come from a page we served.

Sessions live in the server's memory: a restart signs everybody out, which is
the safe way to lose them.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from entrypoints.http.tenancy import Principal

COOKIE = "billrun_console"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
IDLE_SECONDS = 8 * 3600
"""A working day without a click signs the session out."""


@dataclass
class Session:
    principal: Principal
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    seen: float = field(default_factory=time.monotonic)

    def accepts(self, token: str | None) -> bool:
        """Whether `token` is this session's CSRF token (compared in constant time)."""
        return token is not None and hmac.compare_digest(token.encode(), self.csrf.encode())


class Sessions:
    def __init__(self, idle_seconds: float = IDLE_SECONDS) -> None:
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._idle = idle_seconds

    def open(self, principal: Principal) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(32)
        session = Session(principal)
        with self._lock:
            self._forget_idle()
            self._sessions[session_id] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            now = time.monotonic()
            if now - session.seen > self._idle:
                del self._sessions[session_id]
                return None
            session.seen = now
            return session

    def close(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)

    def _forget_idle(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self._sessions.items() if now - s.seen > self._idle]:
            del self._sessions[key]
