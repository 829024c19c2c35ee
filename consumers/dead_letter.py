"""Bounded redelivery with backoff, then a dead-letter stream that keeps the
message and the reason.

A handler that raises is retried (`nack` with a growing delay) up to
`max_attempts` deliveries; a message that can never succeed (its body does not
validate, or delivery refuses it: `DeliveryRefused`) is not retried at all.
Either way the message is then published to the dead-letter subject with
headers saying why, and acknowledged, so it stops blocking nothing and loses
nothing. Nothing is ever `term`inated silently
(REJECT_ON_ERROR would drop it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from faststream import BaseMiddleware
from faststream.exceptions import AckMessage, HandlerException, NackMessage
from faststream.message import StreamMessage
from pydantic import ValidationError

from application.shared.messages import DeliveryRefused

log = logging.getLogger(__name__)


ACK_WAIT_S = 15.0
"""How long the server waits for an ack before redelivering. A worker that dies
holding messages delays them by this much; consumers fetch two at a time, so it
only needs to cover two renders, with room for a loaded machine."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_seconds: Sequence[float] = (1, 5, 15, 60)

    def delay(self, attempt: int) -> float:
        """The wait before delivery `attempt + 1`."""
        return float(self.backoff_seconds[min(attempt, len(self.backoff_seconds)) - 1])


@dataclass(frozen=True)
class DeadLetters:
    stream: str
    subject_prefix: str

    def subject(self, original: str) -> str:
        return f"{self.subject_prefix}.{original}"


class PermanentError(Exception):
    """A failure that retrying cannot fix: dead-letter at once."""


def dead_letter_middleware(
    dead_letters: DeadLetters, policy: RetryPolicy, consumer: str
) -> type[BaseMiddleware[Any, Any]]:
    """A FastStream middleware class bound to one consumer's dead-letter settings."""

    class DeadLetterMiddleware(BaseMiddleware[Any, Any]):
        async def consume_scope(self, call_next: Any, msg: StreamMessage[Any]) -> Any:
            try:
                return await call_next(msg)
            except HandlerException:
                raise
            except Exception as error:
                attempts = _attempts(msg)
                # A refused message (a bill group's template that cannot be rendered,
                # or exceeds its budget) is refused the same way every time: retrying
                # it only spends the worker's time.
                permanent = isinstance(error, ValidationError | PermanentError | DeliveryRefused)
                if not permanent and attempts < policy.max_attempts:
                    log.warning(
                        "%s: attempt %d failed (%s); retrying in %.0f s",
                        consumer, attempts, error, policy.delay(attempts),
                    )  # fmt: skip
                    raise NackMessage(delay=policy.delay(attempts)) from error
                await self._dead_letter(msg, error, attempts, permanent)
                raise AckMessage() from error

        async def _dead_letter(
            self, msg: StreamMessage[Any], error: Exception, attempts: int, permanent: bool
        ) -> None:
            raw = msg.raw_message
            reason = f"{type(error).__name__}: {error}"
            headers = {
                **{k: v for k, v in (msg.headers or {}).items() if k != "Nats-Msg-Id"},
                "Billrun-Dead-Letter-Reason": reason[:1000],
                "Billrun-Dead-Letter-Consumer": consumer,
                "Billrun-Dead-Letter-Attempts": str(attempts),
                "Billrun-Dead-Letter-Permanent": "yes" if permanent else "no",
                "Billrun-Original-Subject": raw.subject,
                "Billrun-Original-Sequence": str(raw.metadata.sequence.stream),
                # One dead letter per consumer and message, even if this is retried.
                "Nats-Msg-Id": f"{consumer}:{raw.metadata.sequence.stream}",
            }
            broker = self.context.get("broker")
            await broker.publish(
                msg.body,
                dead_letters.subject(raw.subject),
                headers=headers,
                stream=dead_letters.stream,
            )
            log.error("%s: dead-lettered %s after %d attempts: %s",
                      consumer, raw.subject, attempts, reason)  # fmt: skip

    return DeadLetterMiddleware


def _attempts(msg: StreamMessage[Any]) -> int:
    return int(msg.raw_message.metadata.num_delivered or 1)
