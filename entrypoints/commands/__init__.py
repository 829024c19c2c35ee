"""The `billrun` command groups, one module each."""
