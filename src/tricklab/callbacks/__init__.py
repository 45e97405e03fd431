"""Callbacks that record a run: per-epoch history and the divergence guard."""
