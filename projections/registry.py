"""Which version of each read model serves reads, and which one is being built.

One row per read model. Readers look up the active suffix here on every
command, so switching a rebuilt version in is one UPDATE: atomic for readers.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventsourcing.postgres import PostgresDatastore
from psycopg.sql import SQL, Identifier

from infrastructure.persistence import schema_lock


@dataclass(frozen=True)
class Registration:
    name: str
    active: str
    building: str | None
    generation: int


class ProjectionRegistry:
    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore
        self._table = SQL("{}.{}").format(
            Identifier(datastore.schema), Identifier("projection_registry")
        )
        with (
            schema_lock(datastore, "projection_registry"),
            datastore.transaction(commit=True) as curs,
        ):
            curs.execute(
                SQL(
                    "CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, active text NOT NULL, "
                    "building text, generation int NOT NULL, updated_at timestamptz NOT NULL "
                    "DEFAULT now())"
                ).format(self._table)
            )

    def get(self, name: str, code_version: int) -> Registration:
        """The registration, created on first use with the code's own version active."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "INSERT INTO {} (name, active, generation) VALUES (%s, %s, 1) "
                    "ON CONFLICT (name) DO NOTHING"
                ).format(self._table),
                (name, f"v{code_version}"),
            )
            curs.execute(SQL("SELECT * FROM {} WHERE name = %s").format(self._table), (name,))
            row = curs.fetchone()
        assert row is not None
        return Registration(row["name"], row["active"], row["building"], row["generation"])

    def begin_build(self, name: str, suffix: str, generation: int) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "UPDATE {} SET building = %s, generation = %s, updated_at = now() "
                    "WHERE name = %s"
                ).format(self._table),
                (suffix, generation, name),
            )

    def switch(self, name: str, suffix: str) -> str:
        """Make `suffix` the active version; return the one it replaced."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL("SELECT active FROM {} WHERE name = %s FOR UPDATE").format(self._table),
                (name,),
            )
            row = curs.fetchone()
            assert row is not None
            curs.execute(
                SQL(
                    "UPDATE {} SET active = %s, building = NULL, updated_at = now() WHERE name = %s"
                ).format(self._table),
                (suffix, name),
            )
        return str(row["active"])
