"""Benchmarks: backends, timing, the harness that turns targets into rows, and the report."""
