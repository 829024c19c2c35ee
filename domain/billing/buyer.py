"""What an account's invoices say about the buyer beyond its name: a postal
address, a VAT id and an electronic address (EN 16931 BG-7, BG-8, BT-48, BT-49).

An e-invoice needs the buyer's postal address with its country (BR-10, BR-11);
a Peppol invoice the buyer's electronic address, as a scheme of the Peppol EAS
code list and an id in it (PEPPOL-EN16931-R010). Both are optional here: an
account without them is still billed, and `billrun run check` says which
e-invoices it cannot have.
"""

from __future__ import annotations

import re

from domain.shared.errors import AccountError
from domain.shared.model import ValueObject

_COUNTRY = re.compile(r"[A-Z]{2}")
_SCHEME = re.compile(r"[0-9]{4}|EM")


class BuyerDetails(ValueObject):
    """The buyer's postal address, VAT id and electronic address (each optional)."""

    street: str | None = None
    city: str | None = None
    postal_code: str | None = None
    country_code: str | None = None
    """ISO 3166-1 alpha-2: `BE`, `FR`. Required with any other part of the address."""
    vat_id: str | None = None
    endpoint_scheme: str | None = None
    """A Peppol EAS code (`0208`: Belgian enterprise number, `9925`: Belgian VAT,
    `0009`: SIRET, `0088`: GLN, ...) or `EM` (email), with `endpoint_id`."""
    endpoint_id: str | None = None

    @property
    def has_address(self) -> bool:
        return self.country_code is not None

    def check(self, where: str) -> None:
        """Raise AccountError naming `where` unless the details are coherent."""
        address = (self.street, self.city, self.postal_code)
        if self.country_code is None and any(address):
            raise AccountError(f"{where}: an address needs its country (ISO 3166-1 alpha-2)")
        if self.country_code is not None and not _COUNTRY.fullmatch(self.country_code):
            raise AccountError(
                f"{where}: country {self.country_code!r} is not an ISO 3166-1 alpha-2 code "
                "(two capital letters, e.g. BE)"
            )
        if (self.endpoint_scheme is None) != (self.endpoint_id is None):
            raise AccountError(f"{where}: an electronic address needs both its scheme and its id")
        if self.endpoint_scheme is not None and not _SCHEME.fullmatch(self.endpoint_scheme):
            raise AccountError(
                f"{where}: electronic address scheme {self.endpoint_scheme!r} is not a Peppol "
                "EAS code (four digits, e.g. 0208) nor EM"
            )
