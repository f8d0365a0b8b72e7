"""Operator-level profiles of a configuration and its untuned baseline (MindSpore's profiler)."""
