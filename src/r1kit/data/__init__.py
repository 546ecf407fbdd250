"""Datasets: built-in synthetic tasks, adapters for common formats, and loaders."""
