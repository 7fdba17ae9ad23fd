"""The soak report: aligned text tables for the terminal, and the same figures as JSON."""

from __future__ import annotations

import json
import os
import platform
from typing import Any

from bench.soak import report_resilience, resilience
from bench.soak.common import ARTICLES, FREEZE_SECONDS, LATE_MARK_S, PER_IP_LIMIT, THREADS, WORKERS
from bench.soak.json_report import as_json
from bench.soak.phases import Soak
from bench.soak.resilience import Resilience
from bench.soak.summary import Summary, ms, summarize, timeline
from bench.soak.tables import table
from config import ENV_PREFIX


def build_report(
    soak: Soak, checks: dict[str, Any], started: str, elapsed: float
) -> tuple[str, dict[str, Any]]:
    """The text and the JSON of one soak."""
    summary = summarize(soak, checks, started, elapsed)
    res = resilience.measure(summary)
    summary.targets += res.targets
    return render(summary, res), as_json(summary) | {"resilience": report_resilience.as_json(res)}


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def render(s: Summary, res: Resilience) -> str:
    lines = [
        *_header(s),
        "",
        *_requests(s),
        "",
        *_timeline(s),
        "",
        "errors by status",
        table(
            ["status", "outside outages", "inside outages"], _error_rows(s) or [["none", "0", "0"]]
        ),
        "",
        *_outage(s),
        "",
        *report_resilience.lines(res),
        "",
        "durability",
        table(["check", "value"], _durability_rows(s)),
        "",
        f"worker memory (VmRSS) after the {s.soak.options.warmup:g} s warm-up and at the end",
        table(
            ["pid", "after warm-up", "end", "growth"],
            s.memory.rows or [["none", "-", "-", "n/a"]],
        ),
        "",
        "targets",
        table(
            ["target", "value", "target", "status", "note"],
            [[t.label, t.value, t.target, "PASS" if t.ok else "MISS", t.note] for t in s.targets],
            "lrlll",
        ),
        *_details(s),
        *report_resilience.detail_lines(s, res),
    ]
    events = s.checks["events"]
    lost_events = s.lost_events if not events["capped"] else "n/a (capped)"
    lines += [
        "",
        f"acknowledged writes lost: follows {s.lost_writes}, events {lost_events}, "
        f"articles {res.articles.lost}",
        f"elapsed {s.elapsed:.0f} s; JSON: {s.soak.options.output}",
    ]
    return "\n".join(lines)


def _bucket(s: Summary) -> float:
    return max(5.0, round(s.soak.options.seconds / 12 / 5) * 5)


def _header(s: Summary) -> list[str]:
    options, outage = s.soak.options, s.soak.outage
    return [
        f"newsfeed soak, started {s.started}: {options.minutes:g} min at {options.rate:g} req/s, "
        f"{options.users} users, Redis restart by {outage.signal}, worker SIGKILL, "
        f"Redis SIGSTOP for {FREEZE_SECONDS:g} s",
        f"service: {ENV_PREFIX}RATE_LIMIT_PER_IP={PER_IP_LIMIT} (one client IP), "
        "other settings as shipped; AOF appendfsync always",
        f"machine: cpus {os.cpu_count()}, python {platform.python_version()}, "
        f"gunicorn {WORKERS} workers x {THREADS} threads (gthread), {ARTICLES:,} articles, "
        f"load avg (1 min) at start {s.soak.load_avg_start:.2f}, "
        f"at end {os.getloadavg()[0]:.2f}",
    ]


def _requests(s: Summary) -> list[str]:
    options, load = s.soak.options, s.soak.load
    sent = len(s.samples)
    return [
        "requests (latency: send to last byte, ms; 'ok out' = 2xx/3xx outside the outage)",
        table(
            ["kind", "requests", "ok", "errors", "p50", "p99", "ok out p50", "ok out p99"],
            s.kind_rows,
        ),
        f"  offered {options.rate:g} req/s, sent {sent:,} ({sent / options.seconds:.1f} req/s); "
        f"sent > {LATE_MARK_S * 1000:.0f} ms after their slot: {s.late:,} "
        f"(max {max(s.lateness, default=0) * 1000:.0f} ms); dropped {sum(load.dropped)}; "
        f"p99 from slot {ms(s.from_schedule, 99)} ms",
        f"  write slots sent as reads (users' writes in flight): {sum(load.write_skips)}; "
        f"first pages from cache: hit {s.cache['hit']:,}, miss {s.cache['miss']:,}",
    ]


def _timeline(s: Summary) -> list[str]:
    bucket = _bucket(s)
    rows = [
        [
            f"{b['from']:.0f}",
            str(b["sent"]),
            str(b["errors"]),
            str(b["server_errors"]),
            _num(b["p50_ms"]),
            _num(b["p99_ms"]),
            _num(b["max_ms"]),
            "*"
            if any(b["from"] <= w.end and b["from"] + bucket >= w.start for w in s.windows)
            else "",
        ]
        for b in timeline(s.samples, bucket, s.end)
    ]
    return [
        f"timeline ({bucket:g} s buckets by send time; '*' overlaps an outage window)",
        table(
            ["from s", "sent", "errors", "5xx", "p50 ms", "p99 ms", "max ms", ""], rows, "rrrrrrrl"
        ),
    ]


def _error_rows(s: Summary) -> list[list[str]]:
    return [
        [status, str(s.errors_out[status]), str(s.errors_in[status])]
        for status in sorted(set(s.errors_in) | set(s.errors_out))
    ]


def _outage(s: Summary) -> list[str]:
    outage, freeze = s.soak.outage, s.soak.freeze

    def at(value: float | None) -> str:
        return "never" if value is None or value != value else f"{value:.2f}"

    rows = [
        [f"redis stopped ({outage.signal})", at(outage.stopped)],
        ["redis answering again", at(outage.started)],
        ["first /readyz 200", at(outage.ready)],
        ["window", f"{s.window.end - s.window.start:.2f} s"],
    ]
    if freeze.happened:
        rows += [
            ["redis frozen (SIGSTOP)", at(freeze.stopped)],
            ["redis resumed (SIGCONT)", at(freeze.started)],
            ["first /readyz 200", at(freeze.ready)],
            ["window", f"{s.windows[-1].end - s.windows[-1].start:.2f} s"],
        ]
    return [
        "redis outages, seconds from the start of the load",
        table(["moment", "at"], rows),
        f"  requests overlapping the windows: {sum(1 for x in s.samples if s.inside(x)):,}, "
        f"of which server errors {s.server_in:,}",
    ]


def _durability_rows(s: Summary) -> list[list[str]]:
    follows, events = s.checks["follows"], s.checks["events"]
    verdicts = ", ".join(f"{k} {v}" for k, v in sorted(follows["verdicts"].items()))
    rows = [["acknowledged subscription writes", f"{follows['acknowledged_writes']:,}"]]
    for name, outage in (("restart", s.soak.outage), ("freeze", s.soak.freeze)):
        if not outage.happened:
            continue
        checked = outage.follows
        rows += [
            [
                f"users checked after the {name}",
                f"{checked.get('checked', 0)} (skipped {checked.get('skipped', 0)})",
            ],
            ["  lost acknowledged writes", str(checked.get("lost", 0))],
            ["  unacknowledged writes applied", str(checked.get("unacknowledged_applied", 0))],
            [f"events in the stream before the {name}", f"{outage.stream_before:,}"],
            ["  of those, present after it", f"{outage.stream_after:,}"],
        ]
    return rows + [
        ["users checked at the end", str(follows["users"])],
        ["  verdicts", verdicts],
        ["  lost acknowledged writes", str(follows["lost"])],
        ["acks inconsistent with their write", str(len(s.bad_acks))],
        ["events accepted (202) over the run", f"{events['accepted']:,}"],
        ["  rejected inside accepted batches", str(events["rejected_in_acknowledged_batches"])],
        ["events in failed batches", f"{events['in_unacknowledged_batches']:,}"],
        ["stream length at the end", f"{events['stream_length']:,}"],
        ["  stored without an acknowledgement", f"{events['unacknowledged_stored']:,}"],
    ]


def _details(s: Summary) -> list[str]:
    """The first few of each kind of trouble, when there was any."""
    lines: list[str] = []
    if s.server_out:
        lines += ["", "server errors outside the outage windows (first 10)"]
        for x in s.server_out[:10]:
            lines.append(f"  +{x.sent:.2f}s {x.kind}: {x.status} {x.detail[:160]!r}")
    slowest = s.slowest(5)
    if slowest:
        lines += ["", "slowest requests outside the outage windows"]
        lines += [
            f"  +{x.sent:.2f}s {x.kind} {x.user}: {x.status} {x.detail[:40]} "
            f"in {(x.done - x.sent) * 1000:.0f} ms"
            for x in slowest
        ]
    other = s.other_errors()
    if other:
        lines += ["", "other errors outside the outage windows (first 5)"]
        lines += [f"  +{x.sent:.2f}s {x.kind} {x.user}: {x.status}" for x in other[:5]]
    crashes = s.soak.load.crashes
    if crashes:
        lines += ["", f"LOAD GENERATOR ERRORS: {len(crashes)} (the first)", crashes[0]]
    if s.bad_acks:
        lines += ["", "acks inconsistent with their write (first 10)"]
        lines += [f"  {b}" for b in s.bad_acks[:10]]
    for label, detail in (
        ("after the restart", s.soak.outage.follows.get("lost_detail", [])),
        ("after the freeze", s.soak.freeze.follows.get("lost_detail", [])),
        ("at the end", s.checks["follows"]["lost_detail"]),
    ):
        if detail:
            lines += ["", f"lost acknowledged writes {label} (first 10)"]
            lines += [f"  {json.dumps(d)}" for d in detail[:10]]
    return lines
