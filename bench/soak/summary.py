"""The soak's figures: per kind, errors inside and outside the outages, memory, the targets."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import percentile
from bench.soak.common import KINDS, LATE_MARK_S, MEMORY_GROWTH_TARGET, RECOVERY_TIMEOUT_S
from bench.soak.load import Sample, is_server_error
from bench.soak.phases import Soak


@dataclass
class Target:
    label: str
    value: str
    target: str
    ok: bool
    note: str = ""


@dataclass(frozen=True)
class Window:
    """An outage window: from the stop (or SIGSTOP) to the first /readyz 200 after it (or the
    end of the run)."""

    start: float
    end: float

    def overlaps(self, s: Sample) -> bool:
        return s.sent <= self.end and s.done >= self.start


@dataclass
class Memory:
    rows: list[list[str]]  # pid, after warm-up, end, growth
    growths: list[float]
    replaced: set[int]  # workers present at only one of the two samples


@dataclass
class Summary:
    """What the text report and the JSON both show, computed once."""

    soak: Soak
    checks: dict[str, Any]
    started: str
    elapsed: float
    samples: list[Sample]
    end: float
    window: Window  # the restart's
    windows: list[Window]  # the restart's and the freeze's
    kind_rows: list[list[str]]
    kind_json: dict[str, Any]
    lateness: list[float]
    from_schedule: list[float]
    errors_in: Counter[str]
    errors_out: Counter[str]
    server_out: list[Sample]
    memory: Memory
    lost_writes: int
    stream_lost: int
    lost_events: int
    bad_acks: list[str]
    cache: Counter[str]
    targets: list[Target]

    @property
    def late(self) -> int:
        return sum(1 for x in self.lateness if x > LATE_MARK_S)

    @property
    def server_in(self) -> int:
        return sum(1 for s in self.samples if is_server_error(s.status) and self.inside(s))

    @property
    def recovered(self) -> bool:
        return self.soak.outage.ready is not None

    def inside(self, s: Sample) -> bool:
        return inside(self.windows, s)

    def other_errors(self) -> list[Sample]:
        """Errors outside the outage window that are not server errors (4xx)."""
        return [
            s
            for s in self.samples
            if not self.inside(s) and s.status[0] not in "23" and not is_server_error(s.status)
        ]

    def slowest(self, count: int) -> list[Sample]:
        """The slowest requests outside the outage window."""
        outside = (s for s in self.samples if not self.inside(s))
        return sorted(outside, key=lambda s: s.sent - s.done)[:count]


def inside(windows: Sequence[Window], s: Sample) -> bool:
    return any(w.overlaps(s) for w in windows)


def ms(values: Sequence[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:.1f}" if values else "n/a"


def summarize(soak: Soak, checks: dict[str, Any], started: str, elapsed: float) -> Summary:
    options, load, outage = soak.options, soak.load, soak.outage
    samples = load.all_samples()
    end = max([options.seconds, *(s.done for s in samples)])
    window = Window(*outage.window(end))
    windows = [window]
    if soak.freeze.happened:
        windows.append(Window(*soak.freeze.window(end)))
    kind_rows, kind_json = _kinds(samples, windows)
    errors_in, errors_out = _errors(samples, windows)
    outages = (outage, soak.freeze)
    stream_lost = sum(max(0, o.stream_before - o.stream_after) for o in outages if o.happened)
    cache: Counter[str] = Counter()
    for c in load.cache:
        cache.update(c)
    summary = Summary(
        soak=soak,
        checks=checks,
        started=started,
        elapsed=elapsed,
        samples=samples,
        end=end,
        window=window,
        windows=windows,
        kind_rows=kind_rows,
        kind_json=kind_json,
        lateness=[s.sent - s.scheduled for s in samples],
        from_schedule=[s.done - s.scheduled for s in samples],
        errors_in=errors_in,
        errors_out=errors_out,
        server_out=[s for s in samples if is_server_error(s.status) and not inside(windows, s)],
        memory=_memory(soak.memory_start, soak.memory_end),
        lost_writes=checks["follows"]["lost"] + sum(o.follows.get("lost", 0) for o in outages),
        stream_lost=stream_lost,
        lost_events=checks["events"]["lost"] + stream_lost,
        bad_acks=[b for chunk in load.bad_acks for b in chunk],
        cache=cache,
        targets=[],
    )
    summary.targets = _targets(summary)
    return summary


def _kinds(
    samples: Sequence[Sample], windows: Sequence[Window]
) -> tuple[list[list[str]], dict[str, Any]]:
    """Requests, errors and latencies per kind of request (and for all): rows and JSON."""
    rows = []
    data: dict[str, Any] = {}
    for kind in (*KINDS, "all"):
        mine = [s for s in samples if kind == "all" or s.kind == kind]
        ok = [s for s in mine if s.status[0] in "23"]
        lat = [s.done - s.sent for s in mine if not s.status.startswith("client ")]
        lat_out = [s.done - s.sent for s in mine if not inside(windows, s) and s.status[0] in "23"]
        rows.append(
            [
                kind,
                str(len(mine)),
                str(len(ok)),
                str(len(mine) - len(ok)),
                ms(lat, 50),
                ms(lat, 99),
                ms(lat_out, 50),
                ms(lat_out, 99),
            ]
        )
        data[kind] = {
            "requests": len(mine),
            "ok": len(ok),
            "errors": len(mine) - len(ok),
            "p50_ms": percentile(lat, 50) * 1000 if lat else None,
            "p99_ms": percentile(lat, 99) * 1000 if lat else None,
            "ok_outside_outage_p50_ms": percentile(lat_out, 50) * 1000 if lat_out else None,
            "ok_outside_outage_p99_ms": percentile(lat_out, 99) * 1000 if lat_out else None,
        }
    return rows, data


def _errors(
    samples: Sequence[Sample], windows: Sequence[Window]
) -> tuple[Counter[str], Counter[str]]:
    """Failed requests by status: inside an outage window, and outside them."""
    errors_in: Counter[str] = Counter()
    errors_out: Counter[str] = Counter()
    for s in samples:
        if s.status[0] not in "23":
            (errors_in if inside(windows, s) else errors_out)[s.status] += 1
    return errors_in, errors_out


def _memory(start: dict[int, int], end: dict[int, int]) -> Memory:
    """Each worker's RSS after the warm-up against the end, in KB."""
    rows = []
    growths: list[float] = []
    for pid in sorted(set(start) | set(end)):
        a, b = start.get(pid), end.get(pid)
        growth = (b - a) / a if a and b else None
        if growth is not None:
            growths.append(growth)
        rows.append(
            [
                str(pid),
                f"{a / 1024:.1f} MB" if a else "-",
                f"{b / 1024:.1f} MB" if b else "-",
                f"{growth * 100:+.1f}%" if growth is not None else "n/a",
            ]
        )
    return Memory(rows, growths, set(start) ^ set(end))


def _targets(s: Summary) -> list[Target]:
    outage, freeze, memory = s.soak.outage, s.soak.freeze, s.memory
    follows, events = s.checks["follows"], s.checks["events"]
    growths, replaced = memory.growths, memory.replaced
    return [
        Target(
            "5xx outside the outage windows",
            str(len(s.server_out)),
            "0",
            not s.server_out,
            "incl. connection resets and timeouts",
        ),
        Target(
            "lost acknowledged writes",
            str(s.lost_writes),
            "0",
            s.lost_writes == 0,
            f"after the restart {outage.follows.get('lost', 0)}, after the freeze "
            f"{freeze.follows.get('lost', 0)}, at the end {follows['lost']}",
        ),
        Target(
            "lost acknowledged events",
            str(s.lost_events) if not events["capped"] else "n/a",
            "0",
            s.lost_events == 0,
            f"across the restart and the freeze {s.stream_lost}, over the run {events['lost']}",
        ),
        Target(
            "worker memory growth (max)",
            f"{max(growths) * 100:+.1f}%" if growths else "n/a",
            f"< {MEMORY_GROWTH_TARGET * 100:.0f}%",
            bool(growths) and not replaced and max(growths) < MEMORY_GROWTH_TARGET,
            "workers replaced during the run: " + ", ".join(map(str, sorted(replaced)))
            if replaced
            else "per worker, after warm-up to end",
        ),
        Target(
            "ready again after the restart",
            f"{s.window.end - outage.started:.2f} s" if s.recovered else "never",
            f"< {RECOVERY_TIMEOUT_S:g} s",
            s.recovered and s.window.end - outage.started < RECOVERY_TIMEOUT_S,
            "from redis-server answering PING to /readyz 200",
        ),
    ]


def timeline(samples: Sequence[Sample], bucket: float, end: float) -> list[dict[str, Any]]:
    """Per bucket of send time: requests, errors and latency (send to last byte)."""
    rows = []
    for n in range(int(end // bucket) + 1):
        lo, hi = n * bucket, (n + 1) * bucket
        mine = [s for s in samples if lo <= s.sent < hi]
        lat = [s.done - s.sent for s in mine if not s.status.startswith("client ")]
        rows.append(
            {
                "from": lo,
                "sent": len(mine),
                "errors": sum(1 for s in mine if s.status[0] not in "23"),
                "server_errors": sum(1 for s in mine if is_server_error(s.status)),
                "p50_ms": percentile(lat, 50) * 1000 if lat else None,
                "p99_ms": percentile(lat, 99) * 1000 if lat else None,
                "max_ms": max(lat) * 1000 if lat else None,
            }
        )
    return rows
