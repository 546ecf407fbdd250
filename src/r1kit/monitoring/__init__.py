"""Seeing training as it happens: callbacks, statistics of the generations, trend alerts, console, report."""
