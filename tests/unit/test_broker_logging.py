"""FastStream's restart of a fetch loop after nats-py's plain TimeoutError is logged at
DEBUG; any other failure keeps its level. The filter doing it comes with the broker,
not with importing the consumers."""

from __future__ import annotations

import logging
import subprocess
import sys

from consumers.app import BROKER_LOGGER_NAME, broker_logger

MESSAGE = "Task-26 raised an exception, retrying...\\nIf this behavior causes issues, ..."


def record(error: BaseException) -> tuple[logging.LogRecord, bool]:
    logger = broker_logger()
    made = logger.makeRecord(
        logger.name, logging.ERROR, __file__, 1, MESSAGE, (), (type(error), error, None)
    )
    return made, bool(logger.filter(made))


def test_an_empty_fetch_timing_out_is_not_an_error() -> None:
    made, shown = record(TimeoutError())
    assert made.levelno == logging.DEBUG
    assert shown == broker_logger().isEnabledFor(logging.DEBUG)


def test_other_failures_stay_errors() -> None:
    made, shown = record(ConnectionError("gone"))
    assert (made.levelno, shown) == (logging.ERROR, True)


def test_importing_the_consumers_attaches_no_log_filter() -> None:
    probe = (
        "import logging, consumers.app; "
        f"print(len(logging.getLogger({BROKER_LOGGER_NAME!r}).filters))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert shown.stdout.strip() == "0"


def test_building_brokers_again_attaches_the_filter_once() -> None:
    broker_logger()
    assert len(broker_logger().filters) == 1
