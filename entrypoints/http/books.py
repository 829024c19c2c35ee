"""Each tenant's book, opened on its first request and kept open until shutdown.

A book is the runtime a CLI command opens (`entrypoints/runtime.py`): the Billing
application over the tenant's schema, and its read side. Requests of one tenant
share it from worker threads: the application's connection pool is made for
that; the read side catches its views up in one thread at a time (`reading`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from application.shared.app import Billing
from entrypoints.http.tenancy import Authority
from entrypoints.runtime import Runtime, open_runtime
from projections.catalog import ReadSide


@dataclass
class Book:
    tenant: str
    runtime: Runtime
    _read_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def billing(self) -> Billing:
        return self.runtime.billing

    @contextmanager
    def reading(self) -> Iterator[ReadSide]:
        """The read side, to one request at a time: catching a view up writes its
        tracking position, which two threads must not do at once."""
        with self._read_lock:
            yield self.runtime.read_side


class Books:
    def __init__(self, authority: Authority) -> None:
        self._authority = authority
        self._books: dict[str, Book] = {}
        self._lock = threading.Lock()
        self._stack = ExitStack()

    def of(self, tenant: str) -> Book:
        book = self._books.get(tenant)
        if book is not None:
            return book
        with self._lock:  # opening a book migrates its schema: once per tenant
            if tenant not in self._books:
                settings = self._authority.settings_for(tenant)
                runtime = self._stack.enter_context(open_runtime(settings))
                self._books[tenant] = Book(tenant, runtime)
            return self._books[tenant]

    def close(self) -> None:
        with self._lock:
            self._books.clear()
            self._stack.close()
