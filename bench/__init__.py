"""Benchmarks, run by hand (``bench/README.md``); what they share is in ``bench._lib``."""
