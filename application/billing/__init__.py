"""Billing context: importing accounts, usage and charges, exchange rates, invoicers."""
