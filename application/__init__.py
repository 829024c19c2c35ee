"""Application layer: commands that load aggregates, call them and save them.

The only layer that writes events.
"""
