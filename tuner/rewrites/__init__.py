"""Inference rewrites applied to a MindSpore network before it is compiled."""
