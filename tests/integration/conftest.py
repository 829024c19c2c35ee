"""A JetStream server for the integration tests that publish or consume: the one
named by BILLRUN_TEST_NATS_URL when set, otherwise an embedded nats-server started
once for the session. Tests keep apart by using streams of their own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator

import nats
import nats.js.errors
import pytest

from infrastructure.messaging import StreamNames
from tests.integration.helpers import EventLog


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("BILLRUN_TEST_NATS_URL")
    if url:
        yield url
        return
    from infrastructure.embedded import embedded_nats

    with embedded_nats(tmp_path_factory.mktemp("nats-home")) as embedded_url:
        yield embedded_url


def unique_streams() -> StreamNames:
    tag = secrets.token_hex(4)
    return StreamNames(
        stream=f"TEST_{tag.upper()}",
        subject_prefix=f"test-{tag}",
        dead_letter_stream=f"TEST_{tag.upper()}_DLQ",
        dead_letter_prefix=f"test-{tag}-dlq",
    )


@pytest.fixture
def streams(nats_server: str) -> Iterator[StreamNames]:
    """Streams of the test's own, deleted afterwards."""
    names = unique_streams()
    yield names

    async def delete() -> None:
        nc = await nats.connect(nats_server)
        js = nc.jetstream()
        for name in (names.stream, names.dead_letter_stream):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(name)
        await nc.close()

    asyncio.run(delete())


@pytest.fixture
def log(database_url: str) -> Iterator[EventLog]:
    """The event log of the test's own database, read with plain SQL."""
    with EventLog(database_url) as opened:
        yield opened
