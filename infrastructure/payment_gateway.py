"""The built-in sandbox payment gateway: deterministic outcomes by token.

It behaves like a real card gateway where it matters for billrun's guarantees:
it keeps every charge it accepted, keyed by the caller's idempotency key, in
the table `sandbox_gateway_charges` (so it survives our own process dying, as
a real gateway's records do), answers a repeated key with the first answer
and never charges twice, and can be asked what became of a key. The outcome
is chosen by the payment token:

| token starts with | answer                                                    |
| ----------------- | --------------------------------------------------------- |
| `tok_approved`    | approved (charged)                                        |
| `tok_declined`    | declined (nothing charged)                                |
| `tok_error`       | error before charging (nothing charged, nothing recorded) |
| `tok_timeout`     | charged, but the answer is lost: a timeout; a look-up says approved |

Any other token is declined as unknown. Real gateways plug in behind the same
interface (`application.shared.ports.PaymentGateway`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from eventsourcing.postgres import PostgresDatastore
from psycopg.sql import SQL, Composed, Identifier

from domain.receivables.collection import GatewayAnswer, GatewayOutcome
from infrastructure.persistence import schema_lock

TABLE = "sandbox_gateway_charges"


class SandboxGateway:
    name = "sandbox"

    def __init__(
        self,
        datastore: PostgresDatastore,
        table: str = TABLE,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.datastore = datastore
        self.table = table
        self.clock = clock
        """The sandbox's own time, when a charge is taken (None: the database's
        `now()`); billrun hands it its clock, so tests can travel in time."""
        self._table = SQL("{}.{}").format(Identifier(datastore.schema), Identifier(table))
        self._created = False

    def create_table(self) -> None:
        statement = SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            "idempotency_key text PRIMARY KEY, "
            "token text NOT NULL, "
            "amount numeric NOT NULL, "
            "currency text NOT NULL, "
            "outcome text NOT NULL, "
            "reference text, "
            "message text, "
            "charged_at timestamptz NOT NULL DEFAULT now())"
        ).format(self._table)
        with (
            schema_lock(self.datastore, self.table),
            self.datastore.transaction(commit=True) as curs,
        ):
            curs.execute(statement)
        self._created = True

    def charge(
        self, token: str, amount: Decimal, currency: str, idempotency_key: str
    ) -> GatewayAnswer:
        if not self._created:
            self.create_table()
        known = self.lookup(idempotency_key)
        if known is not None:
            return known
        if token.startswith("tok_error"):
            return GatewayAnswer(outcome=GatewayOutcome.ERROR, message="sandbox: processor error")
        if token.startswith("tok_approved") or token.startswith("tok_timeout"):
            outcome, message = GatewayOutcome.APPROVED, "sandbox: approved"
        elif token.startswith("tok_declined"):
            outcome, message = GatewayOutcome.DECLINED, "sandbox: card declined"
        else:
            outcome, message = GatewayOutcome.DECLINED, f"sandbox: unknown token {token!r}"
        reference = f"sbx_{secrets.token_hex(8)}"
        stored = self._store(idempotency_key, token, amount, currency, outcome, reference, message)
        if token.startswith("tok_timeout"):
            return GatewayAnswer(outcome=GatewayOutcome.TIMEOUT, message="sandbox: no answer")
        return stored

    def _store(
        self,
        key: str,
        token: str,
        amount: Decimal,
        currency: str,
        outcome: GatewayOutcome,
        reference: str,
        message: str,
    ) -> GatewayAnswer:
        """Keep the charge; should the same key race in, the first one stays."""
        statement: Composed = SQL(
            "INSERT INTO {} (idempotency_key, token, amount, currency, outcome, reference, "
            "message, charged_at) VALUES (%s, %s, %s, %s, %s, %s, %s, COALESCE(%s, now())) "
            "ON CONFLICT (idempotency_key) DO NOTHING"
        ).format(self._table)
        charged_at = None if self.clock is None else self.clock()
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                statement,
                (key, token, amount, currency, outcome.value, reference, message, charged_at),
            )
        found = self.lookup(key)
        assert found is not None
        return found

    def lookup(self, idempotency_key: str) -> GatewayAnswer | None:
        if not self._created:
            self.create_table()
        statement: Composed = SQL(
            "SELECT outcome, reference, message, charged_at FROM {} WHERE idempotency_key = %s"
        ).format(self._table)
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(statement, (idempotency_key,))
            row = curs.fetchone()
        if row is None:
            return None
        return GatewayAnswer(
            outcome=GatewayOutcome(row["outcome"]),
            reference=row["reference"],
            message=row["message"],
            # The day in UTC, as every date billrun records.
            charged_on=row["charged_at"].astimezone(UTC).date(),
        )

    def charges(self) -> list[tuple[str, Decimal, str]]:
        """Every charge taken (key, amount, currency): what tests count."""
        if not self._created:
            self.create_table()
        statement: Composed = SQL(
            "SELECT idempotency_key, amount, currency FROM {} WHERE outcome = 'approved' "
            "ORDER BY charged_at"
        ).format(self._table)
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(statement)
            return [(r["idempotency_key"], Decimal(r["amount"]), r["currency"]) for r in curs]
