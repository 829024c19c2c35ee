"""Billing: Account and its pure billing engine; packages, usage, charges, contracts,
pricing, lines and exchange rates. May import: domain.shared."""
