"""The `newsfeed train` command: fit the learned ranker on the event stream and publish it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import click

from cli.common import open_client
from config import Settings
from feed.exceptions import ServiceUnavailable
from feed.model.learning import Progress, TrainingOutcome, serving_model, train_and_publish
from feed.readers import events
from recommender.tfidf import TfidfRanker


@click.command("train")
def train_command() -> None:
    """Fit the learned ranker on the event stream and publish it if it beats tfidf.

    Reads every event the stream holds, replays the served pages it records, fits a logistic
    regression on the earlier 80% and compares it with the tfidf ranker on the latest 20% by
    per-page AUC. Published (every web process picks it up within NEWSFEED_MODEL_POLL_SECONDS)
    only when its AUC is no lower; otherwise the previous learned model keeps serving, or
    tfidf's weights if there is none. One training runs at a time across processes.
    """
    settings = Settings.from_env()
    client = open_client(settings)
    try:
        try:
            model = serving_model(client, settings.live_window_days)
        except ServiceUnavailable as exc:
            raise click.ClickException(f"no TF-IDF model to train on: {exc}") from None
        with _bars(events.stream_length(client)) as progress:
            outcome = train_and_publish(
                client,
                model,
                TfidfRanker(half_life_hours=settings.freshness_half_life_hours),
                progress,
            )
        click.echo(report(outcome))
        if not outcome.won:
            sys.exit(1)
    finally:
        client.close()


def report(outcome: TrainingOutcome) -> str:
    """What happened, the figures the gate used, and the weights."""
    if not outcome.won:
        return f"{outcome.reason}; try again when it is done"
    training = outcome.training
    lines = [f"{outcome.events:,} events read"]
    if training is not None:
        lines.append(
            f"{training.impressions:,} impressions on {training.pages:,} pages, "
            f"{training.clicks:,} clicks ({training.seconds:.1f} s)"
        )
        if training.validation_auc is not None and training.baseline_auc is not None:
            lines.append(
                f"validation AUC {training.validation_auc:.4f} vs tfidf "
                f"{training.baseline_auc:.4f} on the latest {training.validation_pages:,} pages "
                "with a click and a skip"
            )
        if training.model is not None:
            weights = sorted(training.model.weights().items(), key=lambda kv: -abs(kv[1]))
            lines.append(
                "weights (standardized): "
                + ", ".join(f"{name} {value:+.3f}" for name, value in weights)
            )
    if outcome.version is not None:
        lines.append(f"published learned model {outcome.version}")
    else:
        lines.append(f"not published: {outcome.reason}")
        keeping = (
            f"learned model {outcome.serving}"
            if outcome.serving is not None
            else "the tfidf weights (no learned model is published)"
        )
        lines.append(f"serving keeps {keeping}")
    return "\n".join(lines)


@contextmanager
def _bars(entries: int) -> Iterator[Progress]:
    """Progress bars on a terminal: stream entries read, then pages replayed."""
    with ExitStack() as stack:
        reading = stack.enter_context(
            click.progressbar(length=entries, label="reading events", file=sys.stderr)
        )

        def pages(total: int) -> Callable[[int], None]:
            bar = stack.enter_context(
                click.progressbar(length=total, label="replaying pages", file=sys.stderr)
            )
            return bar.update

        yield Progress(reading.update, pages)
