"""A JetStream server for the integration tests that publish or consume: the one
named by BILLRUN_TEST_NATS_URL when set, otherwise an embedded nats-server started
once for the session. Tests keep apart by using streams of their own."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("BILLRUN_TEST_NATS_URL")
    if url:
        yield url
        return
    from infrastructure.embedded import embedded_nats

    with embedded_nats(tmp_path_factory.mktemp("nats-home")) as embedded_url:
        yield embedded_url
