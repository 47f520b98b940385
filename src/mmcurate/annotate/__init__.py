"""Annotators: compute per-item quality signals without filtering anything."""
