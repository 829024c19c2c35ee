"""Runs context: scheduling, checking, executing, previewing and cancelling bill runs."""
