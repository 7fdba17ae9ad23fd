"""Aligned text tables for the soak's terminal report."""

from __future__ import annotations

from collections.abc import Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """An aligned text table; align has one letter per column, l or r (default: l then r)."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    align = align or "l" + "r" * (len(headers) - 1)

    def line(cells: Sequence[str]) -> str:
        return (
            "  "
            + "  ".join(
                c.ljust(w) if a == "l" else c.rjust(w)
                for c, w, a in zip(cells, widths, align, strict=True)
            ).rstrip()
        )

    return "\n".join(
        [line(headers), "  " + "  ".join("-" * w for w in widths), *(line(r) for r in rows)]
    )
