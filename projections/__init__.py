"""Read models: PostgreSQL tables built from the notification log.

Each view subclasses the library's PostgresTrackingRecorder, so its rows and its
tracking record (the last notification it has processed) commit in one
transaction: a view is never ahead of or behind what it says it has seen.
"""
