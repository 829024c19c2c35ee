"""Opening billrun for one command: settings, database, application, read side."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from application.shared.app import Billing
from application.shared.ports import Seller
from infrastructure.database import database_url
from infrastructure.persistence import eventsourcing_environment
from infrastructure.settings import Settings
from infrastructure.tenancy import DEFAULT_TENANT, ControlStore
from projections.catalog import ReadSide

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    env: dict[str, str]
    billing: Billing
    _read_side: ReadSide | None = None

    @property
    def has_read_side(self) -> bool:
        return self._read_side is not None

    @property
    def read_side(self) -> ReadSide:
        if self._read_side is None:
            self._read_side = ReadSide(self.billing, self.env)
        return self._read_side


@contextlib.contextmanager
def open_runtime(settings: Settings) -> Iterator[Runtime]:
    """The application of `settings.tenant`'s book (its own schema); a tenant never
    created is refused before anything is written (`UnknownTenant`)."""
    with database_url(settings) as url:
        if settings.tenant != DEFAULT_TENANT:
            with ControlStore(url, max_size=1) as control:
                control.require_tenant(settings.tenant)
        env = eventsourcing_environment(url, settings.lock_timeout, settings.postgres_schema)
        billing = Billing(env)
        # Run checks refuse to render invoices under the built-in demo seller.
        billing.seller = Seller.from_settings(settings.seller)
        billing.payment_gateway = settings.payment_gateway
        runtime = Runtime(settings, env, billing)
        try:
            yield runtime
        finally:
            if runtime._read_side is not None:
                runtime._read_side.close()
            billing.close()
