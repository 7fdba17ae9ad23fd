"""The `newsfeed evaluate` command: offline ranker metrics on a MIND-format click log, or on
the service's own event stream."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from cli.common import open_client
from config import Settings
from feed.exceptions import ServiceUnavailable
from feed.model.learning import read_pages, serving_model
from recommender.evaluation import (
    DEFAULT_RANKERS,
    LEARNED,
    RANDOM,
    RANKERS,
    TRAIN_FRACTION,
    OfflineMetrics,
    evaluate,
    evaluate_pages,
    make_rankers,
)
from recommender.mind import ParseErrors, read_behaviors, read_follows, read_news
from recommender.ranker import Ranker
from recommender.training import Training

BASELINE = RANDOM
COLUMNS = (("AUC", "auc"), ("MRR", "mrr"), ("nDCG@5", "ndcg5"), ("nDCG@10", "ndcg10"))


@click.command("evaluate")
@click.option(
    "--news",
    "news_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="MIND news.tsv.",
)
@click.option(
    "--behaviors",
    "behaviors_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="MIND behaviors.tsv (with click labels).",
)
@click.option(
    "--follows",
    "follows_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Optional with MIND: a TSV of user id and space-separated followed categories.",
)
@click.option(
    "--stream",
    is_flag=True,
    help="Evaluate on the service's own event stream and current model instead of MIND files "
    "(NEWSFEED_REDIS_URL).",
)
@click.option(
    "--ranker",
    "rankers",
    multiple=True,
    type=click.Choice(list(RANKERS)),
    default=DEFAULT_RANKERS,
    show_default=True,
    help="A ranker to evaluate; repeat for several.",
)
@click.option(
    "--train-fraction",
    type=click.FloatRange(0.05, 0.95),
    default=TRAIN_FRACTION,
    show_default=True,
    help="With the learned ranker: the earliest share of the log it is fitted on; every "
    "ranker is scored on the rest.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random ranker.")
def evaluate_command(
    news_path: Path | None,
    behaviors_path: Path | None,
    follows_path: Path | None,
    stream: bool,
    rankers: tuple[str, ...],
    train_fraction: float,
    seed: int,
) -> None:
    """Offline ranker metrics on a click log.

    Replays the impressions of BEHAVIORS (or of the event stream, with --stream) in time order
    through the rankers the service serves (mmr: tfidf with mmr_lambda 0.7; random: a seeded
    baseline) and prints, per ranker, AUC, MRR, nDCG@5 and nDCG@10 computed per impression and
    averaged, as the MIND paper defines them; tied candidates count as in a random order.

    With --ranker learned the log is split in time: the learned ranker is fitted on its
    earliest --train-fraction, and every ranker is scored on the rest.
    """
    names = list(dict.fromkeys(rankers))
    if BASELINE not in names:
        names.append(BASELINE)  # the lifts need it
    chosen = make_rankers(names, seed=seed)
    trainings: list[Training] = []
    if stream:
        if news_path or behaviors_path or follows_path:
            raise click.UsageError("--stream reads the service's log: no MIND files with it")
        results = _on_stream(chosen, train_fraction, trainings)
    else:
        if news_path is None or behaviors_path is None:
            raise click.UsageError("give --news and --behaviors (MIND files), or --stream")
        results = _on_mind(
            news_path, behaviors_path, follows_path, chosen, train_fraction, trainings
        )
    some = results[BASELINE]
    if not some.impressions:
        raise click.ClickException("no impression has both a clicked and a skipped candidate")
    for training in trainings:
        click.echo(training_line(training))
    click.echo(metrics_table(results))
    scope = " (the later part of the log)" if LEARNED in names else ""
    click.echo(
        f"\n{some.impressions} impressions evaluated{scope}, {some.skipped} skipped "
        "(all or none of their candidates clicked).\n"
        f"Lift: relative change against the random ranker (seed {seed})."
    )


def _on_mind(
    news_path: Path,
    behaviors_path: Path,
    follows_path: Path | None,
    rankers: dict[str, Ranker],
    train_fraction: float,
    trainings: list[Training],
) -> dict[str, OfflineMetrics]:
    news_errors, behavior_errors, follow_errors = ParseErrors(), ParseErrors(), ParseErrors()
    news = read_news(news_path, news_errors)
    impressions = read_behaviors(behaviors_path, behavior_errors)
    follows = read_follows(follows_path, follow_errors) if follows_path else None
    for path, errors in (
        (news_path, news_errors),
        (behaviors_path, behavior_errors),
        (follows_path, follow_errors),
    ):
        if path is not None and errors.count:
            shown = "; ".join(errors.examples)
            click.echo(f"{path.name}: skipped {errors.count} malformed lines ({shown})", err=True)
    if not impressions:
        raise click.ClickException(f"no readable impressions in {behaviors_path}")
    return evaluate(
        news,
        impressions,
        rankers,
        progress=_progress_bar,
        follows=follows,
        train_fraction=train_fraction,
        trained=trainings.append,
    )


def _on_stream(
    rankers: dict[str, Ranker], train_fraction: float, trainings: list[Training]
) -> dict[str, OfflineMetrics]:
    settings = Settings.from_env()
    client = open_client(settings)
    try:
        try:
            model = serving_model(client, settings.live_window_days)
        except ServiceUnavailable as exc:
            raise click.ClickException(f"no TF-IDF model to evaluate with: {exc}") from None
        pages, _ = read_pages(client)
    finally:
        client.close()
    if not pages:
        raise click.ClickException("the event stream records no impressions")
    return evaluate_pages(
        model,
        pages,
        rankers,
        progress=_progress_bar,
        train_fraction=train_fraction,
        trained=trainings.append,
    )


def training_line(training: Training) -> str:
    """How the learned ranker was fitted, and whether `newsfeed train` would publish it."""
    if training.model is None:
        return f"learned: not fitted ({training.reason}); it ranks as tfidf"
    gate = "publishable" if training.publishable else f"not publishable: {training.reason}"
    judged = ""
    if training.validation_auc is not None and training.baseline_auc is not None:
        judged = (
            f"; on its own latest pages AUC {training.validation_auc:.4f} vs tfidf "
            f"{training.baseline_auc:.4f}"
        )
    return (
        f"learned: fitted on the earlier {training.impressions:,} impressions "
        f"({training.pages:,} pages, {training.clicks:,} clicks){judged}; {gate}\n"
    )


def metrics_table(results: dict[str, OfflineMetrics]) -> str:
    """Each ranker's metrics with its lift over the random baseline (which must be there)."""
    baseline = results[BASELINE]
    width = max(len("ranker"), *(len(name) for name in results))
    header = f"{'ranker':<{width}}" + "".join(f"  {title:<16}" for title, _ in COLUMNS)
    lines = [header.rstrip(), "-" * len(header.rstrip())]
    for name, metrics in results.items():
        cells = []
        for _, field in COLUMNS:
            value: float = getattr(metrics, field)
            base: float = getattr(baseline, field)
            lift = "" if name == BASELINE or not base else f"({value / base - 1:+.1%})"
            cells.append(f"  {value:.4f} {lift:<9}")
        lines.append((f"{name:<{width}}" + "".join(cells)).rstrip())
    return "\n".join(lines)


@contextmanager
def _progress_bar(total: int) -> Iterator[Callable[[int], None]]:
    with click.progressbar(length=total, label="evaluating", file=sys.stderr) as bar:
        yield bar.update
