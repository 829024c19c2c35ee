"""How people and processes reach billrun: the `billrun` command."""
