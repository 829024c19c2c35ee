"""Runs: BillRun (settings, statistics, lifecycle, queue), schedules and run content.
May import: domain.shared, domain.billing, domain.receivables, domain.invoicing."""
