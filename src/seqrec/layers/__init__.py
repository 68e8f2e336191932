"""Reusable layers shared by models."""
