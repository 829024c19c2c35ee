"""The relay's header block is byte-for-byte what nats-py would send."""

from __future__ import annotations

import pytest

from infrastructure.relay import header_block


def nats_py_block(headers: dict[str, str]) -> bytes:
    # nats-py 2.16 `Client._send_publish`, restated: NATS/1.0, then per header
    # the trimmed name, ": ", the trimmed value with CR/LF as spaces.
    out = bytearray(b"NATS/1.0\r\n")
    for name, value in headers.items():
        out += name.strip().encode() + b": "
        out += value.strip().translate(str.maketrans({"\r": " ", "\n": " "})).encode() + b"\r\n"
    return bytes(out + b"\r\n")


def test_the_block_equals_nats_py_encoding() -> None:
    headers = {
        "Nats-Msg-Id": "42",
        "Billrun-Aggregate-Id": "ACC-Ünïcode 1",
        "Billrun-Timestamp": "2026-02-01T00:00:00+00:00",
    }
    assert header_block(headers) == nats_py_block(headers)


def test_a_value_cannot_inject_a_header() -> None:
    block = header_block({"Billrun-Aggregate-Id": "ACC-1\r\nNats-Msg-Id: 1"})
    assert block == b"NATS/1.0\r\nBillrun-Aggregate-Id: ACC-1  Nats-Msg-Id: 1\r\n\r\n"


@pytest.mark.parametrize("name", ["", "Bad Name", "Colon:", "Ä"])
def test_an_invalid_header_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid NATS header name"):
        header_block({name: "x"})


def test_the_checked_names_are_kept_by_the_caller_not_by_the_module() -> None:
    # Each Encoder passes a set of its own: nothing is remembered between callers.
    checked: set[str] = set()
    header_block({"Nats-Msg-Id": "1", "Billrun-Event": "X"}, checked)
    assert checked == {"Nats-Msg-Id", "Billrun-Event"}
    with pytest.raises(ValueError, match="invalid NATS header name"):
        header_block({"Bad Name": "x"}, checked)
