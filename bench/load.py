"""Load generators for the HTTP sections: ``wrk`` when it is on PATH, else a Python one."""

from __future__ import annotations

import http.client
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.common import CONNECTIONS, HOST, REPO, percentile

RESULT_MARK = "BENCH_RESULT"


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    generator: str

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else math.nan


LoadFn = Callable[[int, Sequence[tuple[str, str]], float, Path], LoadResult]

_WRK_SCRIPT = """
local entries = %(entries)s
local prepared = {}
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end

function init(args)
  math.randomseed(seed or 1)
  for i, e in ipairs(entries) do
    prepared[i] = wrk.format("GET", e[1], {["Authorization"] = e[2]})
  end
end

function request()
  return prepared[math.random(#prepared)]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("%(mark)s %%d %%d %%.1f %%.1f %%d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_wrk(
    port: int, targets: Sequence[tuple[str, str]], seconds: float, script_dir: Path
) -> LoadResult:
    entries = "{\n" + ",\n".join(f"  {{{_lua_string(p)}, {_lua_string(a)}}}" for p, a in targets)
    script = script_dir / f"wrk-{port}.lua"
    script.write_text(_WRK_SCRIPT % {"entries": entries + "\n}", "mark": RESULT_MARK})
    command = [
        "wrk",
        f"-t{min(2, os.cpu_count() or 2)}",
        f"-c{CONNECTIONS}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://{HOST}:{port}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            _, requests, duration_us, p50_us, p99_us, errors = line.split()
            return LoadResult(
                int(requests),
                int(duration_us) / 1e6,
                float(p50_us) / 1000,
                float(p99_us) / 1000,
                int(errors),
                "wrk",
            )
    raise RuntimeError(f"wrk gave no result (exit {done.returncode}):\n{done.stdout}{done.stderr}")


def run_python_load(
    port: int, targets: Sequence[tuple[str, str]], seconds: float, script_dir: Path
) -> LoadResult:
    """32 keep-alive http.client threads, in a child process so this one stays out of it."""
    spec = script_dir / f"load-{port}.json"
    spec.write_text(json.dumps({"port": port, "targets": list(targets), "seconds": seconds}))
    done = subprocess.run(
        # The bench's hidden --loadgen-worker option runs loadgen_worker below.
        [sys.executable, "-m", "bench", "--loadgen-worker", str(spec)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            data = json.loads(line[len(RESULT_MARK) :])
            return LoadResult(**data)
    raise RuntimeError(f"load generator failed (exit {done.returncode}):\n{done.stderr[-3000:]}")


def loadgen_worker(spec_path: str) -> None:
    """The child process of run_python_load: prints its LoadResult after RESULT_MARK."""
    spec = json.loads(Path(spec_path).read_text())
    port: int = spec["port"]
    targets: list[list[str]] = spec["targets"]
    seconds: float = spec["seconds"]
    latencies: list[list[float]] = [[] for _ in range(CONNECTIONS)]
    errors = [0] * CONNECTIONS
    start = threading.Barrier(CONNECTIONS + 1)
    deadline = [0.0]

    def hammer(slot: int) -> None:
        rng = random.Random(slot)
        mine = latencies[slot]
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        start.wait()
        clock = time.perf_counter
        while clock() < deadline[0]:
            path, auth = targets[rng.randrange(len(targets))]
            t0 = clock()
            try:
                conn.request("GET", path, headers={"Authorization": auth})
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    errors[slot] += 1
                mine.append(clock() - t0)
            except (OSError, http.client.HTTPException):
                errors[slot] += 1
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=10)
        conn.close()

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    merged = [x for chunk in latencies for x in chunk]
    result = LoadResult(
        len(merged),
        elapsed,
        percentile(merged, 50) * 1000,
        percentile(merged, 99) * 1000,
        sum(errors),
        f"python ({CONNECTIONS} http.client threads, 1 process)",
    )
    print(RESULT_MARK + json.dumps(asdict(result)), flush=True)


def pick_load_generator(choice: str) -> tuple[str, LoadFn]:
    if choice in ("auto", "wrk") and shutil.which("wrk"):
        version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
        found = re.search(r"wrk (\S+)", version)
        return f"wrk {found.group(1) if found else ''}".strip(), run_wrk
    if choice == "wrk":
        raise SystemExit("--loadgen wrk: wrk is not on PATH (apt-get install wrk)")
    return f"python ({CONNECTIONS} http.client threads in a child process)", run_python_load
