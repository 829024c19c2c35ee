"""The billing domain: aggregates, events, value objects and pure rules.

Nothing here performs I/O, reads the clock or imports another billrun package.
"""
