"""Benchmarks: `make bench` runs `python -m benchmarks` (see benchmarks/harness.py)."""
