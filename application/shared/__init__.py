"""Shared pieces of the application: the `Billing` wiring (app.py), clock, errors,
ports (what the application needs from infrastructure) and history."""
