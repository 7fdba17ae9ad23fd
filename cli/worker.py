"""`newsfeed worker` runs the background jobs (RQ) and the periodic tasks, `newsfeed jobs`
shows the queues; and what web processes and `newsfeed serve` need from them."""

from __future__ import annotations

import logging
import logging.config
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path

import click
import redis
from rq.exceptions import StopRequested

from cli.common import dev_secret, settings_with_redis
from config import Settings
from config.logs import logging_config
from feed import jobs
from feed.jobs import Runtime, open_queue, periodic, requeue, status
from feed.jobs.training import BackgroundTraining
from feed.jobs.worker import CONNECTION_ERRORS, NewsfeedWorker, RedisOutage
from feed.services import build_services
from feed.sources.polling import fetch_options

log = logging.getLogger(__name__)

# A worker told to stop finishes its job first; `newsfeed serve` gives it this long.
WORKER_STOP_SECONDS = 20


@contextmanager
def runtime_for(settings: Settings) -> Iterator[Runtime]:
    """The jobs' runtime: the services exactly as the API builds them (same ranker, cursor
    key, sizes), with a model keeper that only loads models; closed on exit."""
    svc = build_services(replace(settings, auto_reindex=False))
    queue_redis = open_queue(settings)
    try:
        yield Runtime(
            redis=svc.redis,
            queue_redis=queue_redis,
            feed=svc.feed,
            live_window_days=settings.live_window_days,
            fetch=fetch_options(settings),
            active_window_seconds=settings.active_window_seconds,
            precompute_max_users=settings.precompute_max_users,
            freshness_half_life_hours=settings.freshness_half_life_hours,
        )
    finally:
        svc.close()
        queue_redis.close()


def run_worker(settings: Settings, *, burst: bool = False) -> None:
    """Work until told to stop (SIGTERM/SIGINT finish the current job first), or, in burst
    mode, until the queues are empty. A Redis outage never ends it: the worker reconnects
    with backoff and takes jobs again once Redis answers."""
    stopping = threading.Event()
    _stop_on_signals(stopping)
    with runtime_for(settings) as runtime:
        jobs.install(runtime)
        # The worker's own connection: RQ raises its socket timeout above the blocking dequeue.
        connection = open_queue(settings)
        queues = jobs.queues(runtime.queue_redis)
        requeuer = requeue.Requeuer(runtime.queue_redis, queues)
        training = BackgroundTraining(jobs.train_job)
        ticker = periodic.Ticker(
            runtime.queue_redis,
            jobs.periodic_tasks(
                runtime.queue_redis,
                reindex_seconds=settings.reindex_interval_seconds,
                poll_seconds=settings.source_poll_seconds,
                training=training,
            ),
            # Every worker, every tick: the jobs of dead workers, and the retries now due.
            upkeep=(requeuer.scan, lambda: requeue.enqueue_due_retries(queues)),
        )
        outage = RedisOutage()
        rq_log = logging.getLogger("rq.worker")
        rq_log.addFilter(outage)
        if not burst:
            ticker.start()
        try:
            _work(settings, runtime, connection, stopping, outage, burst=burst)
        finally:
            ticker.stop()
            if training.running:
                log.warning("stopped during a training of the learned ranker: abandoned")
            rq_log.removeFilter(outage)
            jobs.install(None)
            connection.close()


def _work(
    settings: Settings,
    runtime: Runtime,
    connection: redis.Redis,
    stopping: threading.Event,
    outage: RedisOutage,
    *,
    burst: bool,
) -> None:
    """Run RQ's work loop, and a new one whenever it ends without a stop request: RQ ends it
    on a Redis error outside its dequeue retries (a job, a heartbeat or its teardown meeting
    the outage), expecting a supervisor to restart the process."""
    # Workers whose teardown Redis did not answer: still listed as alive until Redis hears
    # of their end, which the next worker to start tells it.
    ghosts: list[NewsfeedWorker] = []

    def bury() -> None:
        for ghost in list(ghosts):
            try:
                ghost.register_death()
            except redis.RedisError:
                continue
            ghosts.remove(ghost)

    while not stopping.is_set():
        worker: NewsfeedWorker | None = None
        ended_by_redis = False
        try:
            try:
                worker = NewsfeedWorker(
                    jobs.queues(connection),
                    connection=connection,
                    liveness_redis=runtime.queue_redis,
                    stopping=stopping,
                    outage=outage,
                    on_start=bury,
                )
                # In burst mode RQ's scheduler moves the retries due (once); otherwise the
                # ticker does, every second: RQ's scheduler process ends with a Redis outage.
                worker.work(
                    burst=burst, with_scheduler=burst, logging_level=settings.log_level.upper()
                )
            except CONNECTION_ERRORS as exc:
                outage.lost(exc)
                ended_by_redis = True
                if worker is not None:
                    ghosts.append(worker)
            except redis.RedisError as exc:  # READONLY after a failover, an OOM refusal
                log.warning("work loop ended on a Redis error: %s", exc)
                ended_by_redis = True
            finally:
                if worker is not None:
                    worker.dispose()
                # RQ's handlers belong to the worker that ended.
                _stop_on_signals(stopping)
        except StopRequested:  # RQ's handler, in the instant before ours replaced it
            stopping.set()
        if stopping.is_set() or (burst and not ended_by_redis and not outage.active):
            break
        if not outage.active:
            log.warning("work loop ended without a stop request; restarting it")
        stopping.wait(outage.next_delay())


def _stop_on_signals(stopping: threading.Event) -> None:
    """SIGTERM and SIGINT stop the worker between work loops (RQ has its own during one)."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())


@click.command("worker")
@click.option("--burst", is_flag=True, help="Run the jobs already queued, then exit.")
def worker_command(burst: bool) -> None:
    """Run background jobs: reindex, precompute first pages, poll RSS/Atom sources.

    Needs the service's secrets (cursors are signed into precomputed pages). Run one or more
    next to the web processes; periodic tasks run once per interval whatever their number.
    """
    settings = dev_secret(settings_with_redis())
    logging.config.dictConfig(_logging_config(settings))
    try:
        run_worker(settings, burst=burst)
    except RuntimeError as exc:  # a configuration the app refuses (a missing key, a cluster queue)
        raise click.ClickException(str(exc)) from exc


@click.command("jobs")
@click.option("--failed", "show_failed", is_flag=True, help="Also list the newest failed jobs.")
def jobs_command(show_failed: bool) -> None:
    """Print the background jobs queued, running, scheduled (retries) and failed."""
    settings = settings_with_redis()
    connection = open_queue(settings)
    depths = status.queue_depths(connection)
    click.echo(", ".join(f"{state} {count}" for state, count in depths.items()))
    if show_failed:
        for job in status.failed_jobs(connection):
            ended = job.ended_at.isoformat(timespec="seconds") if job.ended_at else "?"
            click.echo(f"{job.id} {ended} {job.description}: {job.error}")


@contextmanager
def worker_process(
    env: Mapping[str, str] | None = None, log_path: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`newsfeed worker` as a child of this process, stopped on exit.

    It inherits this process's environment (the embedded Redis URL and development secret
    included) unless given ``env``; its output goes to ``log_path`` when given.
    """
    with open(log_path, "ab") if log_path else nullcontext() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "worker"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT if log else None,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # warm: the current job finishes
            try:
                process.wait(WORKER_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _logging_config(settings: Settings) -> dict[str, object]:
    return logging_config(settings.log_format, settings.log_level)
