"""Datasets: built-in (offline), uploaded files, and named public sets."""
