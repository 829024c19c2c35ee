"""Receivables context: payments, collection, dunning and its notices."""
