"""Benchmarks: ground truth on phantoms, the sharpening study, real maps (``bench.py``), and speed."""
