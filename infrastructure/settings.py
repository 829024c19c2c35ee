"""Settings, read from the environment once, at start-up, by the entrypoint.

This is the one place billrun reads its configuration (every BILLRUN_* variable);
the composition roots (entrypoints/runtime.py, entrypoints/worker.py) hand the
values down, so nothing below them reads the environment.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from infrastructure.tenancy.names import (
    DEFAULT_TENANT,
    TenantNameRefused,
    check_tenant_name,
    tenant_nats_prefix,
    tenant_schema,
    tenant_source,
)

DEFAULT_BATCH_SIZE = 1000
DEFAULT_LOCK_TIMEOUT = 30
DEFAULT_PAYMENT_GATEWAY = "sandbox"
DEFAULT_NATS_PREFIX = "billing"
DEFAULT_BATCH_ACK_WAIT = 30

_NATS_PREFIX = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
"""One NATS subject token (no dots or wildcards), short enough for stream and
durable names derived from it."""
_SOURCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""What may go into a message id (`<source>:<notification id>`) and ce-source."""


class ConfigurationError(Exception):
    """An environment variable holds a value billrun cannot use."""


@dataclass(frozen=True)
class SellerSettings:
    """Who issues the invoices, as configured; None keeps the built-in demo seller's
    value (`application.shared.ports.Seller` holds those defaults)."""

    name: str | None = None
    """BILLRUN_SELLER_NAME."""
    address_lines: tuple[str, ...] | None = None
    """BILLRUN_SELLER_ADDRESS, lines separated by `;`."""
    country_code: str | None = None
    """BILLRUN_SELLER_COUNTRY (ISO 3166-1 alpha-2)."""
    vat_id: str | None = None
    """BILLRUN_SELLER_VAT_ID."""
    email: str | None = None
    """BILLRUN_SELLER_EMAIL: the From of every email."""
    iban: str | None = None
    """BILLRUN_SELLER_IBAN."""
    bic: str | None = None
    """BILLRUN_SELLER_BIC."""
    payment_terms_days: int | None = None
    """BILLRUN_PAYMENT_TERMS_DAYS: days from the invoice date to its due date (>= 0)."""
    street: str | None = None
    """BILLRUN_SELLER_STREET, _CITY, _POSTCODE: the address as e-invoices state it."""
    city: str | None = None
    postal_code: str | None = None
    company_id: str | None = None
    """BILLRUN_SELLER_COMPANY_ID: the legal registration id (BT-30)."""
    endpoint: tuple[str, str] | None = None
    """BILLRUN_SELLER_ENDPOINT, `scheme:id` (a Peppol EAS scheme: `0208:0123456749`)."""
    peppol: bool | None = None
    """BILLRUN_SELLER_PEPPOL (`true`/`false`): Peppol BIS UBL for buyers on Peppol."""
    bank_accounts: tuple[tuple[str, str, str | None], ...] = ()
    """BILLRUN_SELLER_BANK_ACCOUNTS, `CUR=IBAN[/BIC];...`: the account each currency is
    paid to (others: BILLRUN_SELLER_IBAN)."""

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> SellerSettings:
        raw_days = env.get("BILLRUN_PAYMENT_TERMS_DAYS") or None
        days: int | None = None
        if raw_days is not None:
            try:
                days = int(raw_days)
            except ValueError:
                raise ConfigurationError(
                    f"BILLRUN_PAYMENT_TERMS_DAYS: not a whole number: {raw_days!r}"
                ) from None
            if days < 0:
                raise ConfigurationError(f"BILLRUN_PAYMENT_TERMS_DAYS: must be >= 0, not {days}")
        address = env.get("BILLRUN_SELLER_ADDRESS")
        return cls(
            name=env.get("BILLRUN_SELLER_NAME") or None,
            address_lines=(
                tuple(part.strip() for part in address.split(";") if part.strip())
                if address
                else None
            ),
            country_code=env.get("BILLRUN_SELLER_COUNTRY") or None,
            vat_id=env.get("BILLRUN_SELLER_VAT_ID") or None,
            email=env.get("BILLRUN_SELLER_EMAIL") or None,
            iban=env.get("BILLRUN_SELLER_IBAN") or None,
            bic=env.get("BILLRUN_SELLER_BIC") or None,
            payment_terms_days=days,
            street=env.get("BILLRUN_SELLER_STREET") or None,
            city=env.get("BILLRUN_SELLER_CITY") or None,
            postal_code=env.get("BILLRUN_SELLER_POSTCODE") or None,
            company_id=env.get("BILLRUN_SELLER_COMPANY_ID") or None,
            endpoint=_endpoint(env.get("BILLRUN_SELLER_ENDPOINT") or None),
            peppol=_flag("BILLRUN_SELLER_PEPPOL", env.get("BILLRUN_SELLER_PEPPOL") or None),
            bank_accounts=_bank_accounts(env.get("BILLRUN_SELLER_BANK_ACCOUNTS") or ""),
        )


def _endpoint(raw: str | None) -> tuple[str, str] | None:
    if raw is None:
        return None
    scheme, _, identifier = raw.partition(":")
    if not scheme or not identifier:
        raise ConfigurationError(
            f"BILLRUN_SELLER_ENDPOINT: expected scheme:id (e.g. 0208:0123456749), not {raw!r}"
        )
    return scheme, identifier


def _flag(name: str, raw: str | None) -> bool | None:
    if raw is None:
        return None
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise ConfigurationError(f"{name}: expected true or false, not {raw!r}")


def _bank_accounts(raw: str) -> tuple[tuple[str, str, str | None], ...]:
    accounts = []
    for part in (p.strip() for p in raw.split(";")):
        if not part:
            continue
        currency, _, account = part.partition("=")
        iban, _, bic = account.partition("/")
        if len(currency.strip()) != 3 or not iban.strip():
            raise ConfigurationError(
                f"BILLRUN_SELLER_BANK_ACCOUNTS: expected CUR=IBAN[/BIC], not {part!r}"
            )
        accounts.append((currency.strip().upper(), iban.strip(), bic.strip() or None))
    return tuple(accounts)


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    """BILLRUN_DATABASE_URL; None starts an embedded PostgreSQL under `home`."""
    nats_url: str | None
    """BILLRUN_NATS_URL; None starts an embedded nats-server under `home`."""
    home: Path
    """BILLRUN_HOME (default ./.billrun): embedded servers, documents, outbox."""
    batch_size: int
    """BILLRUN_BATCH_SIZE: accounts billed and saved per transaction."""
    smtp_url: str | None = None
    """BILLRUN_SMTP_URL, e.g. smtp://127.0.0.1:1025; None: the email channel is unavailable."""
    lock_timeout: int = DEFAULT_LOCK_TIMEOUT
    """BILLRUN_LOCK_TIMEOUT: seconds any statement waits for a lock before billrun
    gives up, naming the session that holds it."""
    seller: SellerSettings = field(default_factory=SellerSettings)
    """The BILLRUN_SELLER_* variables and BILLRUN_PAYMENT_TERMS_DAYS."""
    payment_gateway: str = DEFAULT_PAYMENT_GATEWAY
    """BILLRUN_PAYMENT_GATEWAY: `sandbox` (the built-in deterministic gateway) or the
    topic of a factory that takes the Billing application."""
    nats_prefix: str = DEFAULT_NATS_PREFIX
    """BILLRUN_NATS_PREFIX: the first token of every subject (`<prefix>.<aggregate>.<Event>`);
    the stream, dead-letter stream and durable consumer names derive from it
    (`infrastructure.messaging.StreamNames.for_prefix`). One per deployment on a
    shared NATS server."""
    batch_ack_wait: int = DEFAULT_BATCH_ACK_WAIT
    """BILLRUN_BATCH_ACK_WAIT: seconds a run's batch handed to `billrun worker`s over
    NATS may go without word from the worker holding it before it is redelivered,
    and that the run's other workers wait on a stalled batch before billing it
    themselves (infrastructure/run_queue.py)."""
    source: str = ""
    """BILLRUN_SOURCE: this deployment's id, in every message id (`<source>:<notification
    id>`) and CloudEvents `ce-source`. Default: `derived_source(database_url, home)`."""
    tenant: str = DEFAULT_TENANT
    """BILLRUN_TENANT (or `--tenant`): whose billing book. Any other tenant than
    `default` has its own schema, and `nats_prefix` and `source` derived from the
    deployment's (`for_tenant`)."""

    @property
    def postgres_schema(self) -> str:
        """The tenant's PostgreSQL schema; "" (`public`) for the default tenant."""
        return tenant_schema(self.tenant)

    def for_tenant(self, tenant: str) -> Settings:
        """These settings pointed at `tenant`: its schema, NATS prefix
        (`<prefix>-<tenant>`) and source (`<source>.<tenant>`), derived from the
        deployment's whichever tenant these pointed at."""
        if tenant != DEFAULT_TENANT:
            try:
                check_tenant_name(tenant, "BILLRUN_TENANT (--tenant)")
            except TenantNameRefused as refused:
                raise ConfigurationError(str(refused)) from None
        prefix, source = self.nats_prefix, self.source
        if self.tenant != DEFAULT_TENANT:  # undo this tenant's derivation first
            prefix = prefix.removesuffix(f"-{self.tenant}")
            source = source.removesuffix(f".{self.tenant}")
        nats_prefix = tenant_nats_prefix(prefix, tenant)
        if not _NATS_PREFIX.fullmatch(nats_prefix):
            raise ConfigurationError(
                f"tenant {tenant!r}: its NATS prefix {nats_prefix!r} is longer than 32 "
                "characters: use a shorter BILLRUN_NATS_PREFIX or tenant name"
            )
        derived_source = tenant_source(source, tenant)
        if not _SOURCE.fullmatch(derived_source):
            raise ConfigurationError(
                f"tenant {tenant!r}: its source {derived_source!r} is longer than 64 "
                "characters: use a shorter BILLRUN_SOURCE or tenant name"
            )
        return replace(self, tenant=tenant, nats_prefix=nats_prefix, source=derived_source)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        batch_size = _at_least_one(env, "BILLRUN_BATCH_SIZE", DEFAULT_BATCH_SIZE)
        lock_timeout = _at_least_one(env, "BILLRUN_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT, "second")
        ack_wait = _at_least_one(env, "BILLRUN_BATCH_ACK_WAIT", DEFAULT_BATCH_ACK_WAIT, "second")
        database_url = env.get("BILLRUN_DATABASE_URL") or None
        home = Path(env.get("BILLRUN_HOME") or ".billrun").resolve()
        nats_prefix = env.get("BILLRUN_NATS_PREFIX") or DEFAULT_NATS_PREFIX
        if not _NATS_PREFIX.fullmatch(nats_prefix):
            raise ConfigurationError(
                f"BILLRUN_NATS_PREFIX: {nats_prefix!r} is not one NATS subject token: use 1-32 "
                "lower-case letters, digits, '-' or '_', starting with a letter or digit"
            )
        source = env.get("BILLRUN_SOURCE") or derived_source(database_url, home)
        if not _SOURCE.fullmatch(source):
            raise ConfigurationError(
                f"BILLRUN_SOURCE: {source!r}: use 1-64 letters, digits, '.', '-' or '_', "
                "starting with a letter or digit"
            )
        deployment = cls(
            database_url=database_url,
            nats_url=env.get("BILLRUN_NATS_URL") or None,
            home=home,
            batch_size=batch_size,
            smtp_url=env.get("BILLRUN_SMTP_URL") or None,
            lock_timeout=lock_timeout,
            seller=SellerSettings.from_environment(env),
            payment_gateway=env.get("BILLRUN_PAYMENT_GATEWAY") or DEFAULT_PAYMENT_GATEWAY,
            nats_prefix=nats_prefix,
            batch_ack_wait=ack_wait,
            source=source,
        )
        return deployment.for_tenant(env.get("BILLRUN_TENANT") or DEFAULT_TENANT)


def _at_least_one(env: Mapping[str, str], name: str, default: int, unit: str = "") -> int:
    """A whole number of at least 1 (of `unit`s) from `name`, `default` when unset."""
    raw = env.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        whole = f"a whole number of {unit}s" if unit else "a whole number"
        raise ConfigurationError(f"{name}: not {whole}: {raw!r}") from None
    if value < 1:
        one = f"1 {unit}" if unit else "1"
        raise ConfigurationError(f"{name}: must be at least {one}, not {value}")
    return value


def derived_source(database_url: str | None, home: Path) -> str:
    """The default BILLRUN_SOURCE: `db-` and 12 hex digits of a SHA-256 of the event
    store's host, port and database name (user, password and options left out, so
    rotating a password keeps the id), or of the embedded server's BILLRUN_HOME.

    Stable for as long as the deployment keeps its database; two databases get
    two ids. Set BILLRUN_SOURCE explicitly when a database moves host but stays
    the same deployment.
    """
    if database_url is None:
        key = f"embedded:{home}"
    else:
        parts = urlsplit(database_url)
        dbname = parts.path.lstrip("/") or (parts.username or "")
        key = f"{parts.hostname or 'localhost'}:{parts.port or 5432}/{dbname}"
    return "db-" + hashlib.sha256(key.encode()).hexdigest()[:12]
