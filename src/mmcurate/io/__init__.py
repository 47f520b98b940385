"""Readers that bring source formats into the lakehouse and writers that export from it."""
