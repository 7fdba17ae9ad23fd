"""``python -m bench.soak``: the soak (bench/soak/run.py)."""

from __future__ import annotations

from bench.soak.run import main

if __name__ == "__main__":
    main()
