"""Readers for the registered datasets and for user-provided logs."""
