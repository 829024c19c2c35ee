"""Receivables: balances per invoicing account, payment allocation, dunning and
collection. May import: domain.shared."""
