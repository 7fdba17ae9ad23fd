"""Measurement programs: quality reports on real text and benchmarks (not shipped as product)."""
