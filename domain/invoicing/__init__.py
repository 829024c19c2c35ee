"""Invoicing: Invoice and its review state machine, credit notes, review rules, bill
groups and invoice number sequences. May import: domain.shared, domain.billing,
domain.receivables."""
