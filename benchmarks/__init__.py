"""Measurements of the product as its users judge it; `python -m benchmarks` runs them all."""
