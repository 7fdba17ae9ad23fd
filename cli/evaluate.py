"""The `newsfeed evaluate` command: offline ranker metrics on a MIND-format click log."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from recommender.evaluation import (
    DEFAULT_RANKERS,
    RANDOM,
    RANKERS,
    OfflineMetrics,
    evaluate,
    make_rankers,
)
from recommender.mind import ParseErrors, read_behaviors, read_news

BASELINE = RANDOM
COLUMNS = (("AUC", "auc"), ("MRR", "mrr"), ("nDCG@5", "ndcg5"), ("nDCG@10", "ndcg10"))


@click.command("evaluate")
@click.option(
    "--news",
    "news_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="MIND news.tsv.",
)
@click.option(
    "--behaviors",
    "behaviors_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="MIND behaviors.tsv (with click labels).",
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
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random ranker.")
def evaluate_command(
    news_path: Path, behaviors_path: Path, rankers: tuple[str, ...], seed: int
) -> None:
    """Offline ranker metrics on a MIND click log.

    Replays the impressions of BEHAVIORS in time order through the rankers the service serves
    (mmr: tfidf with mmr_lambda 0.7; random: a seeded baseline) and prints, per ranker, AUC,
    MRR, nDCG@5 and nDCG@10 computed per impression and averaged, as the MIND paper defines
    them; tied candidates count as in a random order.
    """
    news_errors, behavior_errors = ParseErrors(), ParseErrors()
    news = read_news(news_path, news_errors)
    impressions = read_behaviors(behaviors_path, behavior_errors)
    for path, errors in ((news_path, news_errors), (behaviors_path, behavior_errors)):
        if errors.count:
            shown = "; ".join(errors.examples)
            click.echo(f"{path.name}: skipped {errors.count} malformed lines ({shown})", err=True)
    if not impressions:
        raise click.ClickException(f"no readable impressions in {behaviors_path}")

    names = list(dict.fromkeys(rankers))
    if BASELINE not in names:
        names.append(BASELINE)  # the lifts need it
    results = evaluate(news, impressions, make_rankers(names, seed=seed), progress=_progress_bar)
    some = results[BASELINE]
    if not some.impressions:
        raise click.ClickException("no impression has both a clicked and a skipped candidate")
    click.echo(metrics_table(results))
    click.echo(
        f"\n{some.impressions} impressions evaluated, {some.skipped} skipped "
        "(all or none of their candidates clicked).\n"
        f"Lift: relative change against the random ranker (seed {seed})."
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
