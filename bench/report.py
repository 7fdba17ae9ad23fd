"""The bench report: figures by section, printed as a table and written as JSON."""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench.common import CONNECTIONS, THREADS, WORKERS, median
from bench.load import LoadResult
from devtools.redis_server import RedisServer


@dataclass
class Figure:
    section: str
    label: str
    value: float | None
    unit: str
    target: str = ""
    ok: bool | None = None  # None: no target
    note: str = ""

    @property
    def status(self) -> str:
        return "" if self.ok is None else ("PASS" if self.ok else "MISS")


@dataclass
class Report:
    started: str
    mode: str
    machine: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add_load(self, section: str, label: str, results: Sequence[LoadResult]) -> None:
        """Throughput, p50 and p99 of one server's runs (medians), with each run's throughput."""
        self.add(
            section,
            f"{label} throughput",
            median([r.rps for r in results]),
            "req/s",
            note="runs: " + ", ".join(f"{r.rps:,.0f}" for r in results),
        )
        self.add(section, f"{label} p50", median([r.p50_ms for r in results]), "ms")
        self.add(section, f"{label} p99", median([r.p99_ms for r in results]), "ms")

    def add(
        self,
        section: str,
        label: str,
        value: float | None,
        unit: str,
        *,
        target: str = "",
        ok: bool | None = None,
        note: str = "",
    ) -> None:
        self.figures.append(Figure(section, label, value, unit, target, ok, note))

    def sort(self) -> None:
        """Sections in numbered order (10 after 9); figures keep the order they were measured in."""
        self.figures.sort(key=lambda f: _section_number(f.section))

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for figure, row in zip(self.figures, data["figures"], strict=True):
            row["status"] = figure.status
        return data

    def render(self) -> str:
        lines = [
            f"newsfeed bench, {self.mode} run, started {self.started}",
            "machine: "
            + ", ".join(f"{k} {v}" for k, v in self.machine.items() if not isinstance(v, dict)),
        ]
        rows = [
            (f.label, _format_value(f.value, f.unit), f.target, f.status, f.note)
            for f in self.figures
        ]
        widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(_HEADERS)]
        section = None
        for figure, row in zip(self.figures, rows, strict=True):
            if figure.section != section:
                section = figure.section
                lines += ["", section, "  " + _row(_HEADERS, widths).rstrip()]
                lines.append("  " + "  ".join("-" * w for w in widths[:-1]))
            lines.append("  " + _row(row, widths).rstrip())
        if self.notes:
            lines += ["", "notes:"] + [f"  - {n}" for n in self.notes]
        return "\n".join(lines)


_HEADERS = ("figure", "value", "target", "status", "note")


def _section_number(section: str) -> tuple[int, str]:
    number, _, _ = section.partition(".")
    return (int(number), section) if number.isdigit() else (0, section)


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    label, value, target, status, note = cells
    return "  ".join(
        [
            label.ljust(widths[0]),
            value.rjust(widths[1]),
            target.ljust(widths[2]),
            status.ljust(widths[3]),
            note,
        ]
    )


def _format_value(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if isinstance(value, int) or abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"  # ratios near a threshold: 0.798 must not print as 0.80
    return f"{text} {unit}".rstrip()


def write_json(report: Report, output: Path) -> None:
    """Sort the figures and write the JSON report (also for a partial, aborted run)."""
    report.sort()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report.as_json(), indent=2) + "\n")


def machine_info(server: RedisServer, load_name: str) -> dict[str, Any]:
    info = redis.Redis.from_url(server.url).info("server")
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "redis": info.get("redis_version"),
        "platform": platform.platform(terse=True),
        "load generator": load_name,
        "gunicorn": f"{WORKERS} workers x {THREADS} threads (config/workers.py: gthread-based)",
        "connections": CONNECTIONS,
        # Other work on the machine skews everything: a high figure here flags a noisy run.
        "load avg at start": f"{os.getloadavg()[0]:.2f}",
    }
