"""The relay's nats-py wire shortcut refuses to start on a nats-py it was not written for."""

from __future__ import annotations

import pytest
from nats.aio.client import Client

from infrastructure.nats_wire import PINNED_NATS_PY, NatsWireMismatch, require_nats_wire
from infrastructure.relay import NotificationLog, Relay, RelayError, RelayPositions


def test_the_installed_nats_py_passes_the_check() -> None:
    require_nats_wire()


def test_another_nats_py_version_is_refused_naming_the_pinned_one() -> None:
    with pytest.raises(NatsWireMismatch, match=r"nats-py 2\.16\.0 internals, but nats-py 2\.17\.0"):
        require_nats_wire(installed="2.17.0")


class _ClientWithoutSendCommand(Client):
    # A nats-py whose Client renamed the private member the shortcut writes through.
    def __getattribute__(self, name: str) -> object:
        if name == "_send_command":
            raise AttributeError(name)
        return super().__getattribute__(name)


def test_a_client_lacking_an_internal_is_refused_naming_it_and_the_version() -> None:
    with pytest.raises(NatsWireMismatch, match=r"lacks _send_command.*nats-py 2\.16\.0"):
        require_nats_wire(installed=PINNED_NATS_PY, client=_ClientWithoutSendCommand())


def test_a_relay_is_built_only_after_the_check_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    # The relay constructor runs the check before it touches the log or NATS, so
    # a mismatch is a RelayError (what the CLI reports) at start-up.
    monkeypatch.setattr("infrastructure.nats_wire.version", lambda _name: "3.0.0")
    with pytest.raises(RelayError, match=r"nats-py 3\.0\.0 is installed"):
        Relay(NotificationLog.__new__(NotificationLog), RelayPositions.__new__(RelayPositions),
              "nats://127.0.0.1:4222")  # fmt: skip
