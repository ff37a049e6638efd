"""Benchmarks for crossfk: ``python benchmarks/run.py --help``."""
