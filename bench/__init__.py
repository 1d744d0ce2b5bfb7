"""Benchmarks: `make bench` (python -m bench). They print figures and ratios; tests never time anything."""
