"""Invoicing context: invoices of a run, review, credit notes, documents, delivery."""
