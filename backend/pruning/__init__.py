"""Structural compression (the student) and progressive L1 unstructured pruning."""
