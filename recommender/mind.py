"""Readers for the public MIND format (news.tsv, behaviors.tsv) that skip and count bad lines."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = [
    "Impression",
    "News",
    "ParseErrors",
    "format_time",
    "iter_behaviors",
    "parse_time",
    "read_behaviors",
    "read_follows",
    "read_news",
]

TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"  # "11/15/2019 8:55:22 AM"
NEWS_MIN_FIELDS = 4  # id, category, subcategory, title; abstract and the rest may be missing
BEHAVIOR_FIELDS = 5
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class News:
    id: str
    category: str
    subcategory: str
    title: str
    abstract: str


@dataclass(frozen=True)
class Impression:
    id: str
    user: str
    time: float  # epoch seconds, UTC
    history: tuple[str, ...]  # clicked news ids, oldest first
    candidates: tuple[str, ...]
    labels: tuple[int, ...]  # 1 clicked, 0 not, aligned with candidates


@dataclass
class ParseErrors:
    """How many lines of a file were skipped, with the first few reasons for the report."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, line: int, reason: str) -> None:
        self.count += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"line {line}: {reason}")


def parse_time(text: str) -> float:
    """MIND's "11/15/2019 8:55:22 AM", read as UTC, to epoch seconds (ValueError if malformed)."""
    return datetime.strptime(text.strip(), TIME_FORMAT).replace(tzinfo=UTC).timestamp()


def format_time(epoch: float) -> str:
    """Epoch seconds as MIND writes them, "11/15/2019 8:55:22 AM" (UTC): parse_time's inverse."""
    moment = datetime.fromtimestamp(epoch, UTC)
    hour = moment.hour % 12 or 12
    suffix = "AM" if moment.hour < 12 else "PM"
    return (
        f"{moment.month}/{moment.day}/{moment.year} "
        f"{hour}:{moment.minute:02d}:{moment.second:02d} {suffix}"
    )


def _lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """Numbered lines split on LF only, so a stray CR or bad byte inside a field is harmless."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            yield number, raw.decode("utf-8", errors="replace").rstrip("\r\n")


def read_news(path: str | os.PathLike[str], errors: ParseErrors | None = None) -> dict[str, News]:
    """News by id; a repeated id keeps its first line. Blank lines are ignored, not counted."""
    errors = ParseErrors() if errors is None else errors
    news: dict[str, News] = {}
    for number, line in _lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < NEWS_MIN_FIELDS:
            errors.add(number, f"{len(fields)} fields, expected at least {NEWS_MIN_FIELDS}")
            continue
        news_id = fields[0].strip()
        if not news_id or any(c.isspace() for c in news_id):
            errors.add(number, "missing or malformed news id")
            continue
        abstract = fields[4].strip() if len(fields) > 4 else ""
        if news_id not in news:
            news[news_id] = News(
                news_id, fields[1].strip(), fields[2].strip(), fields[3].strip(), abstract
            )
    return news


def read_follows(
    path: str | os.PathLike[str], errors: ParseErrors | None = None
) -> dict[str, tuple[str, ...]]:
    """Not MIND: an optional companion file, one reader per line, ``user<TAB>slug slug ...``,
    giving the follows MIND lacks. A repeated user keeps its first line."""
    errors = ParseErrors() if errors is None else errors
    follows: dict[str, tuple[str, ...]] = {}
    for number, line in _lines(path):
        if not line.strip():
            continue
        user, tab, slugs = line.partition("\t")
        user = user.strip()
        if not tab or not user or any(c.isspace() for c in user):
            errors.add(number, "expected a user id, a tab and the followed categories")
            continue
        follows.setdefault(user, tuple(sorted(set(slugs.split()))))
    return follows


def _parse_behavior(line: str) -> Impression:
    """One behaviors line, or ValueError naming what is wrong with it."""
    fields = line.split("\t")
    if len(fields) != BEHAVIOR_FIELDS:
        raise ValueError(f"{len(fields)} fields, expected {BEHAVIOR_FIELDS}")
    impression_id, user, moment, history, shown = (f.strip() for f in fields)
    if not impression_id or not user:
        raise ValueError("missing impression or user id")
    try:
        when = parse_time(moment)
    except ValueError:
        raise ValueError(f"unreadable time {moment!r}") from None
    candidates: list[str] = []
    labels: list[int] = []
    for token in shown.split():
        news_id, dash, label = token.rpartition("-")
        if not dash or not news_id or label not in ("0", "1"):
            raise ValueError(f"candidate {token!r} is not NEWSID-0 or NEWSID-1")
        candidates.append(news_id)
        labels.append(int(label))
    if not candidates:
        raise ValueError("no candidates")
    return Impression(
        impression_id, user, when, tuple(history.split()), tuple(candidates), tuple(labels)
    )


def iter_behaviors(
    path: str | os.PathLike[str], errors: ParseErrors | None = None
) -> Iterator[Impression]:
    """Stream impressions in file order; malformed lines are skipped and counted in ``errors``.

    Unlabelled impressions (the MIND test split) count as malformed: they cannot be evaluated.
    """
    errors = ParseErrors() if errors is None else errors
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            yield _parse_behavior(line)
        except ValueError as exc:
            errors.add(number, str(exc))


def read_behaviors(
    path: str | os.PathLike[str], errors: ParseErrors | None = None
) -> list[Impression]:
    return list(iter_behaviors(path, errors))
