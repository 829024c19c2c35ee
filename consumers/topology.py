"""Where billrun's events and dead letters live on NATS, and the consumers' names
(built from the deployment's `StreamNames` by `entrypoints.worker.topology`)."""

from __future__ import annotations

from dataclasses import dataclass

from consumers.dead_letter import DeadLetters


@dataclass(frozen=True)
class Topology:
    stream: str = "BILLING"
    subject_prefix: str = "billing"
    dead_letter_stream: str = "BILLING_DLQ"
    dead_letter_prefix: str = "billing-dlq"
    durable_prefix: str = "billrun"

    def subject(self, aggregate: str, event: str) -> str:
        return f"{self.subject_prefix}.{aggregate}.{event}"

    def durable(self, consumer: str) -> str:
        return f"{self.durable_prefix}-{consumer}"

    @property
    def dead_letters(self) -> DeadLetters:
        return DeadLetters(self.dead_letter_stream, self.dead_letter_prefix)
