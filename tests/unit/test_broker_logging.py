"""FastStream's restart of a fetch loop after nats-py's plain TimeoutError is logged at
DEBUG; any other failure keeps its level."""

from __future__ import annotations

import logging

from consumers.app import BROKER_LOGGER

MESSAGE = "Task-26 raised an exception, retrying...\\nIf this behavior causes issues, ..."


def record(error: BaseException) -> tuple[logging.LogRecord, bool]:
    made = BROKER_LOGGER.makeRecord(
        BROKER_LOGGER.name, logging.ERROR, __file__, 1, MESSAGE, (), (type(error), error, None)
    )
    return made, bool(BROKER_LOGGER.filter(made))


def test_an_empty_fetch_timing_out_is_not_an_error() -> None:
    made, shown = record(TimeoutError())
    assert made.levelno == logging.DEBUG
    assert shown == BROKER_LOGGER.isEnabledFor(logging.DEBUG)


def test_other_failures_stay_errors() -> None:
    made, shown = record(ConnectionError("gone"))
    assert (made.levelno, shown) == (logging.ERROR, True)
