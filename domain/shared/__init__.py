"""Shared kernel: the model base (aggregates, events, values), money, periods, ids,
errors and the input rules. Imports nothing else from the project."""
