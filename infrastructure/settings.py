"""Settings, read from the environment once, at start-up, by the entrypoint."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BATCH_SIZE = 1000
DEFAULT_LOCK_TIMEOUT = 30


class ConfigurationError(Exception):
    """An environment variable holds a value billrun cannot use."""


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    """BILLRUN_DATABASE_URL; None starts an embedded PostgreSQL under `home`."""
    nats_url: str | None
    """BILLRUN_NATS_URL; None starts an embedded nats-server under `home`."""
    home: Path
    """BILLRUN_HOME (default ./.billrun): embedded servers, documents, outbox."""
    batch_size: int
    """BILLRUN_BATCH_SIZE: accounts billed and saved per transaction."""
    smtp_url: str | None = None
    """BILLRUN_SMTP_URL, e.g. smtp://127.0.0.1:1025; None: the email channel is unavailable."""
    lock_timeout: int = DEFAULT_LOCK_TIMEOUT
    """BILLRUN_LOCK_TIMEOUT: seconds any statement waits for a lock before billrun
    gives up, naming the session that holds it."""

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        raw_batch = env.get("BILLRUN_BATCH_SIZE", str(DEFAULT_BATCH_SIZE))
        try:
            batch_size = int(raw_batch)
        except ValueError:
            raise ConfigurationError(
                f"BILLRUN_BATCH_SIZE: not a whole number: {raw_batch!r}"
            ) from None
        if batch_size < 1:
            raise ConfigurationError(f"BILLRUN_BATCH_SIZE: must be at least 1, not {batch_size}")
        raw_lock = env.get("BILLRUN_LOCK_TIMEOUT", str(DEFAULT_LOCK_TIMEOUT))
        try:
            lock_timeout = int(raw_lock)
        except ValueError:
            raise ConfigurationError(
                f"BILLRUN_LOCK_TIMEOUT: not a whole number of seconds: {raw_lock!r}"
            ) from None
        if lock_timeout < 1:
            raise ConfigurationError(
                f"BILLRUN_LOCK_TIMEOUT: must be at least 1 second, not {lock_timeout}"
            )
        return cls(
            database_url=env.get("BILLRUN_DATABASE_URL") or None,
            nats_url=env.get("BILLRUN_NATS_URL") or None,
            home=Path(env.get("BILLRUN_HOME") or ".billrun").resolve(),
            batch_size=batch_size,
            smtp_url=env.get("BILLRUN_SMTP_URL") or None,
            lock_timeout=lock_timeout,
        )
