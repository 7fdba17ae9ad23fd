"""Bench section 12: the model's resident memory per web worker and per host, with each worker
holding its own copy and with the host's workers mapping one file (feed/model/shared.py).

Each worker is a separate Python process that loads the current model from Redis exactly as a
web worker's keeper does (``ModelKeeper.tick``: read the artifact, decode or map it, prepare
it), then ranks a few feeds with reading histories and reads every page of the model's arrays,
as serving does over time. A host's workers start and load together, as gunicorn's do.

Memory is PSS from ``/proc/<pid>/smaps_rollup`` (RSS alongside): a page shared by N processes
counts 1/N in each, so the sum over a host's workers counts it once. A worker's model memory
is its PSS once loaded minus its PSS before (imports done, Redis connected), with every worker
alive at both reads; the host's is the sum over its workers. Medians over ``RUNS`` hosts, each
with a new directory (the first worker writes the file). Then one breaking article is
vectorised into each worker's model (its rows are the process's own: the pages of the file's
room it writes them to, copy-on-write) and read again.

Alone: ``python -m bench.memory [--quick]`` (its own Redis, corpora and models).
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import redis

from bench.common import PROFILES, REPO, log, median
from bench.context import Bench, standalone
from devtools.demo import generate_articles
from feed.model import store as model_store
from feed.model.keeper import ModelKeeper
from recommender.model import CorpusModel, Doc, fit
from recommender.ranker import RankRequest
from recommender.tfidf import TfidfRanker

SECTION = "12. model memory per host (PSS, separate worker processes)"
WORKER_COUNTS = (1, 4)
RUNS = 3
RATIO_TARGET = 1.3  # 4 workers' model memory at most this times one worker's
TARGET_SIZE = 100_000
HISTORY = 50  # articles read by each ranked reader
READERS = 5
CHILD_TIMEOUT_S = 300.0
KB = 1024


@dataclass(frozen=True)
class Usage:
    rss_kb: int
    pss_kb: int


@dataclass(frozen=True)
class Host:
    """One host's workers: each one's model memory (kB) once loaded, and after an article."""

    loaded: list[Usage]
    extended: list[Usage]

    @staticmethod
    def total(usages: Sequence[Usage]) -> Usage:
        return Usage(sum(u.rss_kb for u in usages), sum(u.pss_kb for u in usages))


def memory_section(bench: Bench, size: int) -> None:
    """Figures for the current model in the bench's Redis (a corpus of ``size``)."""
    meta = model_store.current_meta(bench.r)
    if meta is None:
        raise RuntimeError("no model to measure")
    hosts: dict[tuple[int, bool], list[Host]] = {}
    for shared in (False, True):
        for workers in WORKER_COUNTS:
            hosts[workers, shared] = [
                _host(bench.server.url, workers, bench.tmp if shared else None) for _ in range(RUNS)
            ]
            log(f"memory {size:,}, {workers} workers, shared {shared}: done")
    _report(bench, size, meta.articles, hosts)


def _report(
    bench: Bench, size: int, articles: int, hosts: dict[tuple[int, bool], list[Host]]
) -> None:
    label = f"{size // 1000}k corpus"
    mb = float(KB)

    def host_pss(runs: list[Host], state: str = "loaded") -> float:
        return median([Host.total(getattr(h, state)).pss_kb for h in runs]) / mb

    for shared, how in ((False, "own copy each"), (True, "one shared file")):
        for workers in WORKER_COUNTS:
            runs = hosts[workers, shared]
            per_worker = median([u.pss_kb for h in runs for u in h.loaded]) / mb
            rss = median([u.rss_kb for h in runs for u in h.loaded]) / mb
            bench.report.add(
                SECTION,
                f"{label}: {workers} worker{'s' if workers > 1 else ''}, {how}",
                host_pss(runs),
                "MB",
                note=f"per worker: PSS {per_worker:.0f} MB, RSS {rss:.0f} MB; "
                f"after a breaking article {host_pss(runs, 'extended'):.0f} MB",
            )
    at_target = size >= TARGET_SIZE
    for shared, how in ((True, "shared"), (False, "own copies")):
        ratio = host_pss(hosts[4, shared]) / host_pss(hosts[1, shared])
        bench.report.add(
            SECTION,
            f"{label}: 4 workers / 1 worker, {how}",
            ratio,
            "x",
            target=f"<= {RATIO_TARGET:g}x" if shared and at_target else "",
            ok=ratio <= RATIO_TARGET if shared and at_target else None,
            note=f"model of {articles:,} articles; medians of {RUNS} hosts",
        )
    after = host_pss(hosts[4, True], "extended") / host_pss(hosts[1, True], "extended")
    bench.report.add(
        SECTION,
        f"{label}: 4 workers / 1 worker, shared, after a breaking article",
        after,
        "x",
        note="each worker's new rows are in its copy-on-write map of the file: "
        "only the pages they touch are its own",
    )
    bench.report.details[f"memory_{size}"] = {
        f"{w}_{'shared' if s else 'own'}": [
            {"loaded": [u.__dict__ for u in h.loaded], "extended": [u.__dict__ for u in h.extended]}
            for h in runs
        ]
        for (w, s), runs in hosts.items()
    }


def _host(redis_url: str, workers: int, tmp: Path | None) -> Host:
    """``workers`` processes loading the current model together; their usage deltas."""
    share_dir = "" if tmp is None else tempfile.mkdtemp(prefix="models-", dir=tmp)
    command = [sys.executable, "-m", "bench.memory", "--child", redis_url, share_dir]
    children = [
        subprocess.Popen(
            command, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(workers)
    ]
    try:
        _step(children, None, "ready")
        before = [_usage(c.pid) for c in children]
        _step(children, "load", "loaded")
        loaded = [_usage(c.pid) for c in children]
        _step(children, "extend", "extended")
        extended = [_usage(c.pid) for c in children]
    finally:
        for child in children:
            if child.stdin:
                child.stdin.close()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    return Host(_minus(loaded, before), _minus(extended, before))


def _step(children: Sequence[subprocess.Popen[str]], command: str | None, reply: str) -> None:
    """Tell every child ``command`` at once (they work together), then wait for each."""
    if command is not None:
        for child in children:
            assert child.stdin is not None
            child.stdin.write(command + "\n")
            child.stdin.flush()
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    for child in children:
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        if line != reply or time.monotonic() > deadline:
            raise RuntimeError(f"memory worker {child.pid}: expected {reply!r}, got {line!r}")


def _usage(pid: int) -> Usage:
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("Rss", "Pss"):
            fields[name] = int(rest.split()[0])
    return Usage(fields["Rss"], fields["Pss"])


def _minus(after: Sequence[Usage], before: Sequence[Usage]) -> list[Usage]:
    return [
        Usage(a.rss_kb - b.rss_kb, a.pss_kb - b.pss_kb) for a, b in zip(after, before, strict=True)
    ]


def child(redis_url: str, share_dir: str) -> None:
    """One worker: told on stdin, it loads the model as a web worker does, then extends it."""
    r = redis.Redis.from_url(redis_url)
    r.ping()
    keeper = ModelKeeper(
        r, live_window_days=30, poll_seconds=3600, auto_reindex=False, share_dir=share_dir
    )
    ranker = TfidfRanker()
    _answer("ready")
    if sys.stdin.readline().strip() != "load":
        return
    keeper.tick()  # the keeper thread's round: load the current model and prepare it
    loaded = keeper.loaded
    if loaded is None:
        raise RuntimeError("the keeper loaded no model")
    _serve(loaded.model, ranker)
    _answer("loaded")
    if sys.stdin.readline().strip() != "extend":
        return
    slug = loaded.model.slugs[0]
    text = "Officials said the new health services plan would be reviewed next week."
    extended = loaded.model.with_articles([Doc("breaking-1", text, (slug,), time.time())])
    _serve(extended, ranker)
    _answer("extended")
    sys.stdin.read()  # hold the model until the parent is done reading
    keeper.stop()


def _serve(model: CorpusModel, ranker: TfidfRanker) -> None:
    """What serving touches over time: feeds ranked with histories, and so every array."""
    now = float(np.max(model.published)) + 3600
    for reader in range(READERS):
        read = model.ids[reader * HISTORY : (reader + 1) * HISTORY]
        history = tuple((str(i), now - 60) for i in read)
        ranker.rank(model, RankRequest(tuple(model.slugs[:2]), now, 300, history=history))
    # A mapped model's derived arrays (centroids, id table) are in its file; an extended
    # model reads its parent's, and asked for its own would build an id table here.
    for array in model.to_arrays(derived=model.row_table is not None).values():
        np.ascontiguousarray(array).reshape(-1).view(np.uint8)[::4096].sum()
    gc.collect()


def _answer(word: str) -> None:
    print(word, flush=True)


def _publish(r: redis.Redis, size: int) -> None:
    """A model of ``size`` generated articles, fitted here and published as a reindex would."""
    wire = generate_articles(size, id_prefix=f"bench{size}")
    docs = [
        Doc(str(a["id"]), " ".join(str(a[k]) for k in ("title", "summary", "body")), cats, 0.0)
        for a in wire
        for cats in [tuple(str(c) for c in a["categories"])]  # type: ignore[attr-defined]
    ]
    del wire
    t0 = time.perf_counter()
    model = fit(docs)
    log(f"fitted {size:,} articles in {time.perf_counter() - t0:.1f}s")
    now = time.time()
    model_store.publish(
        r, model.to_bytes(), corpus_version=1, snapshot_at=now, fitted_at=now, articles=size
    )


def main(argv: Sequence[str] | None = None) -> None:
    """This section alone: a model of each size fitted here and published to its own Redis."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("--quick", action="store_true", help="10k corpus only")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return
    with standalone(PROFILES[args.quick]) as bench:
        for size in bench.profile.cold_sizes:
            _publish(bench.fresh_db(), size)
            memory_section(bench, size)


if __name__ == "__main__":
    main()
