"""Benchmarks (``python -m tuner.bench <name>``)."""
