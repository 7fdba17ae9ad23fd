"""A deterministic generator of a realistic demo news corpus, written from its own vocabulary."""

from __future__ import annotations

import json
import math
import os
import random
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from devtools.demo_text import FOCUS_POOLS, Lexicon, fill, load_vocabulary

__all__ = ["DEMO_CATEGORIES", "generate_articles", "write_jsonl"]

# Read once, at import: every corpus is written from the same words.
_VOCABULARY = load_vocabulary()
_LEXICONS = _VOCABULARY.lexicons
_HEADLINES = _VOCABULARY.headlines
_SENTENCES = _VOCABULARY.sentences

DEMO_CATEGORIES: dict[str, str] = {slug: lex.name for slug, lex in _LEXICONS.items()}

_TITLE_WORDS = (6, 12)
_SUMMARY_WORDS = (20, 40)
_BODY_WORDS = (80, 200)
_BODY_SENTENCES = (3, 6)
_SECOND_CATEGORY_SHARE = 0.15
_SECONDARY_SENTENCE_SHARE = 0.3  # body sentences of a two-category article from the second
_MAX_ATTEMPTS = 200

_ID_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]*")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_SLUG_CHARS = 60
URL_BASE = "https://news.example.com"


def _title(lex: Lexicon, rng: random.Random, focus: Mapping[str, str]) -> str:
    low, high = _TITLE_WORDS
    for _ in range(_MAX_ATTEMPTS):
        title = fill(rng.choice(_HEADLINES), lex, rng, focus)
        if low <= title.count(" ") + 1 <= high:
            return title
    raise RuntimeError("demo vocabulary cannot make a title of the required length")


def _summary(lex: Lexicon, rng: random.Random, focus: Mapping[str, str]) -> str:
    low, high = _SUMMARY_WORDS
    for _ in range(_MAX_ATTEMPTS):
        first, second = rng.sample(_SENTENCES, 2)
        text = fill(first, lex, rng, focus)
        if len(text.split()) < low:
            text = f"{text} {fill(second, lex, rng, focus)}"
        if low <= len(text.split()) <= high:
            return text
    raise RuntimeError("demo vocabulary cannot make a summary of the required length")


def _body(
    lex: Lexicon, second: Lexicon | None, rng: random.Random, focus: Mapping[str, str]
) -> str:
    low, high = _BODY_WORDS
    fewest, most = _BODY_SENTENCES
    for _ in range(_MAX_ATTEMPTS):
        target = rng.randint(low + 5, high - 10)
        sentences: list[str] = []
        words = 0
        for template in rng.sample(_SENTENCES, most):
            if second and rng.random() < _SECONDARY_SENTENCE_SHARE:
                sentence = fill(template, second, rng)
            else:
                sentence = fill(template, lex, rng, focus)
            sentences.append(sentence)
            words += len(sentence.split())
            if len(sentences) >= fewest and words >= target:
                break
        if low <= words <= high and fewest <= len(sentences) <= most:
            return " ".join(sentences)
    raise RuntimeError("demo vocabulary cannot make a body of the required length")


def _slugify(text: str) -> str:
    slug = _NOT_SLUG.sub("-", text.lower().replace("'", "")).strip("-")
    if len(slug) > _SLUG_CHARS:
        slug = slug[:_SLUG_CHARS].rsplit("-", 1)[0]
    return slug


def _check_categories(categories: Sequence[str] | None) -> list[str]:
    if categories is None:
        return list(_LEXICONS)
    if isinstance(categories, str):
        raise TypeError("categories must be a sequence of slugs, not a single string")
    wanted = list(dict.fromkeys(categories))
    if not wanted:
        raise ValueError("categories must name at least one category")
    unknown = [slug for slug in wanted if slug not in _LEXICONS]
    if unknown:
        raise ValueError(f"unknown demo categories {unknown}; known: {sorted(_LEXICONS)}")
    return wanted


def generate_articles(
    count: int,
    *,
    seed: int = 7,
    now: datetime | None = None,
    categories: Sequence[str] | None = None,
    max_age_days: float = 14.0,
    id_prefix: str = "demo",
) -> list[dict[str, object]]:
    """Articles in the API wire format; the same arguments always give the same articles.

    Ids are ``f"{id_prefix}-{n:06d}"`` for n = 1..count, in order of publication (oldest
    first), and ``published_at`` lies within ``[now - max_age_days, now]`` to the second. A
    naive ``now`` is taken as UTC. About 15% of articles carry a second, related category
    (when it is among ``categories``), listed after the primary one.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    if not max_age_days >= 0 or math.isinf(max_age_days):
        raise ValueError("max_age_days must be a finite number >= 0")
    if not _ID_PREFIX.fullmatch(id_prefix) or len(id_prefix) > 100:
        raise ValueError(
            "id_prefix must be 1-100 characters from A-Z a-z 0-9 . _ : @ -, "
            "starting with a letter or digit"
        )
    slugs = _check_categories(categories)
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)

    rng = random.Random(seed)
    newest = math.floor(now.timestamp())
    oldest = min(math.ceil(now.timestamp() - max_age_days * 86400), newest)
    moments = sorted(rng.randint(oldest, newest) for _ in range(count))

    allowed = set(slugs)
    related = {s: [r for r in _LEXICONS[s].related if r in allowed] for s in slugs}
    weights = [_LEXICONS[s].weight for s in slugs]
    primaries = rng.choices(slugs, weights=weights, k=count)

    articles: list[dict[str, object]] = []
    for n, (moment, primary) in enumerate(zip(moments, primaries, strict=True), start=1):
        lex = _LEXICONS[primary]
        cats = [primary]
        second: Lexicon | None = None
        if related[primary] and rng.random() < _SECOND_CATEGORY_SHARE:
            # The first related slug is the most natural pairing, so it is drawn most often.
            options = related[primary]
            pick = options[0] if rng.random() < 0.6 else rng.choice(options)
            cats.append(pick)
            second = _LEXICONS[pick]
        focus = {pool: rng.choice(lex.pools[pool]) for pool in FOCUS_POOLS}
        title = _title(lex, rng, focus)
        articles.append(
            {
                "id": f"{id_prefix}-{n:06d}",
                "url": f"{URL_BASE}/{primary}/{_slugify(title)}-{n}",
                "title": title,
                "summary": _summary(lex, rng, focus),
                "body": _body(lex, second, rng, focus),
                "categories": cats,
                "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment)),
                "source": rng.choice(lex.sources),
            }
        )
    return articles


def write_jsonl(path: str | os.PathLike[str], articles: Iterable[Mapping[str, object]]) -> int:
    """Write one JSON object per line (UTF-8) and answer how many were written."""
    written = 0
    with open(path, "w", encoding="utf-8") as out:
        for article in articles:
            out.write(json.dumps(article, ensure_ascii=False))
            out.write("\n")
            written += 1
    return written
