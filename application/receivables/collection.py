"""Collecting payments from auto-pay accounts through a payment gateway.

The protocol that makes a charge happen at most once, whatever crashes, races
or repeats:

1. the attempt (amount, idempotency key) is recorded on the account's
   receivables and **committed before** the gateway is called; one attempt per
   account and run, so a repeated or raced run finds it instead of making one;
2. the gateway is called with that key (gateways answer a repeated key with
   the first answer and never charge twice);
3. the answer is recorded: approved records the payment (allocated to open
   invoices oldest first), declined or error schedules the next retry
   (`domain.receivables.collection.COLLECTION_RETRY_DAYS`), a timeout leaves the attempt
   pending.

An attempt found pending (a crash between 1 and 3, or a timeout) is
*reconciled* before anything else: the gateway is asked what became of the
key; never received, it is sent again with the same key; still unknown, it
stays pending. Nothing is guessed, so nothing is charged twice or lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from uuid import UUID

from eventsourcing.persistence import RecordConflictError
from eventsourcing.utils import resolve_topic

from application.shared.app import Billing
from application.shared.errors import ApplicationError
from application.shared.ports import PaymentGateway
from application.shared.retrying import SAVE_ATTEMPTS
from domain.receivables.collection import (
    CollectionAttempt,
    CollectionType,
    GatewayAnswer,
    GatewayOutcome,
    collection_attempt_uuid,
)
from domain.receivables.receivables import Receivables

log = logging.getLogger(__name__)

GATEWAY_VARIABLE = "BILLRUN_PAYMENT_GATEWAY"  # named in errors; read by Settings


def payment_gateway(billing: Billing) -> PaymentGateway:
    """The gateway `billing.payment_gateway` names (BILLRUN_PAYMENT_GATEWAY, read by
    `Settings`): `sandbox` (the default, the built-in deterministic gateway) or the
    topic of a factory that takes the Billing application, e.g.
    `mygateways.stripe:from_billing`."""
    from infrastructure.payment_gateway import SandboxGateway

    name = billing.payment_gateway
    if name == "sandbox":
        return SandboxGateway(billing.recorder.datastore, clock=billing.clock)  # type: ignore[attr-defined]
    try:
        factory = resolve_topic(name)
    except Exception as error:
        raise ApplicationError(f"{GATEWAY_VARIABLE}: cannot load {name!r}: {error}") from None
    gateway: PaymentGateway = factory(billing)
    return gateway


@dataclass(frozen=True)
class CollectionOutcome:
    account_id: str
    attempt: CollectionAttempt | None
    """This run's attempt (None: nothing to collect, or not allowed yet)."""
    reconciled: CollectionAttempt | None = None
    """An earlier pending attempt that was reconciled first."""


class Collector:
    def __init__(self, billing: Billing, gateway: PaymentGateway) -> None:
        self.billing = billing
        self.gateway = gateway

    def collect(
        self,
        account_id: str,
        run_id: str,
        collection_type: CollectionType,
        as_of: date,
        receivables: Receivables | None = None,
    ) -> CollectionOutcome:
        """Reconcile what is pending, then make this run's attempt (once).
        `receivables`: the account's, when the caller loaded them (a batch does, in
        one query); else they are loaded here."""
        if receivables is None:
            receivables = self.billing.find_receivables(account_id)
        if receivables is None or receivables.autopay_token is None:
            return CollectionOutcome(account_id, None)
        reconciled = None
        for _ in range(SAVE_ATTEMPTS):
            pending = receivables.pending_attempt
            if pending is not None:
                receivables, reconciled = self.reconcile(receivables, pending.attempt_id, as_of)
                if reconciled is not None and reconciled.pending:
                    log.info(
                        "account %s: collection %s still pending", account_id, pending.attempt_id
                    )
                    return CollectionOutcome(
                        account_id, self._of_run(receivables, run_id), reconciled
                    )
            at = self.billing.clock()
            attempt = receivables.start_collection(run_id, collection_type, as_of, at)
            if attempt is None:
                return CollectionOutcome(account_id, self._of_run(receivables, run_id), reconciled)
            try:
                self.billing.save(receivables)  # committed before the gateway sees it
            except RecordConflictError:
                # Another executor recorded first (likely this run's attempt, its call
                # to the gateway under way): reload, and reconcile it like any pending
                # attempt; the idempotency key makes a second call harmless.
                receivables = self.billing.get_receivables(account_id)
                continue
            answer = self._charge(receivables, attempt)
            receivables = self._answer(receivables, attempt, answer, as_of)
            return CollectionOutcome(
                account_id, receivables.attempts[attempt.attempt_id], reconciled
            )
        raise RecordConflictError(f"receivables of {account_id} keep changing")

    def reconcile(
        self, receivables: Receivables, attempt_id: UUID, as_of: date
    ) -> tuple[Receivables, CollectionAttempt | None]:
        """Ask the gateway what became of a pending attempt and record it."""
        attempt = receivables.attempts.get(attempt_id)
        if attempt is None or not attempt.pending:
            return receivables, attempt
        answer = self.gateway.lookup(attempt.idempotency_key)
        if answer is None:
            # The gateway never received it (a crash before the call): send it now,
            # with the same key, so a call that did arrive meanwhile is not repeated.
            answer = self._charge(receivables, attempt)
        if answer.outcome is GatewayOutcome.TIMEOUT and attempt.outcome is GatewayOutcome.TIMEOUT:
            return receivables, attempt
        # Found later than it happened: the payment is dated the day the gateway
        # charged (when it says), not the day it was reconciled.
        receivables = self._answer(receivables, attempt, answer, as_of, answer.charged_on)
        return receivables, receivables.attempts[attempt.attempt_id]

    def reconcile_account(self, account_id: str, as_of: date) -> CollectionAttempt | None:
        """Reconcile the account's pending attempt, if any (`billrun payment reconcile`)."""
        receivables = self.billing.find_receivables(account_id)
        if receivables is None or receivables.pending_attempt is None:
            return None
        _, attempt = self.reconcile(receivables, receivables.pending_attempt.attempt_id, as_of)
        return attempt

    def _charge(self, receivables: Receivables, attempt: CollectionAttempt) -> GatewayAnswer:
        assert receivables.autopay_token is not None
        try:
            return self.gateway.charge(
                receivables.autopay_token,
                attempt.amount,
                receivables.currency,
                attempt.idempotency_key,
            )
        except (TimeoutError, ConnectionError) as error:
            # The call may have reached the gateway: unknown, so pending, never guessed.
            return GatewayAnswer(outcome=GatewayOutcome.TIMEOUT, message=str(error))

    def _answer(
        self,
        receivables: Receivables,
        attempt: CollectionAttempt,
        answer: GatewayAnswer,
        as_of: date,
        charged_on: date | None = None,
    ) -> Receivables:
        """Record the gateway's answer; on a conflict (a payment recorded meanwhile),
        reload and record it on the current state, unless someone already did."""
        for _ in range(SAVE_ATTEMPTS):
            current = receivables.attempts[attempt.attempt_id]
            if not current.pending or (
                answer.outcome is GatewayOutcome.TIMEOUT and current.outcome is not None
            ):
                return receivables
            receivables.answer_collection(
                attempt.attempt_id,
                answer.outcome,
                answer.reference,
                answer.message,
                as_of,
                self.billing.clock(),
                charged_on,
            )
            try:
                self.billing.save(receivables)
                return receivables
            except RecordConflictError:
                receivables = self.billing.get_receivables(receivables.account_id)
        raise RecordConflictError(f"receivables of {receivables.account_id} keep changing")

    @staticmethod
    def _of_run(receivables: Receivables, run_id: str) -> CollectionAttempt | None:
        return receivables.attempts.get(collection_attempt_uuid(receivables.account_id, run_id))
