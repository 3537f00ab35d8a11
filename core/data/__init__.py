"""Datasets and transforms (each module imports torch; this package does not)."""
