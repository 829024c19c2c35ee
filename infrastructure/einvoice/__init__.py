"""E-invoices: UBL 2.1 (EN 16931, Peppol BIS Billing 3.0), CII D16B, Factur-X."""
