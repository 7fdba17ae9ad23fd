"""The soak: mixed traffic through one Redis restart (``python -m bench.soak``)."""
