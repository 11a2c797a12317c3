"""Benchmarks: speed (``speed_<topic>.py``) and agreement with real data, as JSON in bench_results/."""
