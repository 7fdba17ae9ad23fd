"""devtools: the deterministic demo corpus, its vocabulary file, and the MIND sample command."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.demo import DEMO_CATEGORIES, generate_articles, write_jsonl
from devtools.demo_text import VOCABULARY_FILE, load_vocabulary
from recommender.mind import ParseErrors, read_behaviors, read_news

ROOT = Path(__file__).resolve().parents[1]

NOW = datetime(2025, 3, 14, 12, 30, 45, 500_000, tzinfo=UTC)
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
WIRE_KEYS = {"id", "url", "title", "summary", "body", "categories", "published_at", "source"}


def parse_utc(text: str) -> datetime:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def cats(article: dict[str, object]) -> list[str]:
    value = article["categories"]
    assert isinstance(value, list) and all(isinstance(c, str) for c in value)
    return value


def test_catalog_has_the_expected_slugs() -> None:
    expected = {
        "middle-east",
        "syria",
        "israel-hamas-war",
        "business",
        "tech",
        "science",
        "sports",
        "health",
        "climate",
        "culture",
        "world",
    }
    assert expected <= set(DEMO_CATEGORIES)
    assert DEMO_CATEGORIES["israel-hamas-war"] == "Israel-Hamas War"
    assert all(SLUG_RE.match(slug) and name for slug, name in DEMO_CATEGORIES.items())


def test_same_arguments_give_identical_output_and_seeds_differ() -> None:
    first = generate_articles(200, seed=11, now=NOW)
    assert generate_articles(200, seed=11, now=NOW) == first
    other = generate_articles(200, seed=12, now=NOW)
    assert [a["title"] for a in other] != [a["title"] for a in first]


def test_articles_are_in_the_wire_format() -> None:
    articles = generate_articles(400, now=NOW)
    assert len(articles) == 400
    for article in articles:
        assert set(article) == WIRE_KEYS
        assert cats(article)
        for key in WIRE_KEYS - {"categories"}:
            assert isinstance(article[key], str) and article[key], key
        assert ID_RE.match(str(article["id"]))
        assert str(article["url"]).startswith("https://news.example.com/")
        assert 6 <= len(str(article["title"]).split()) <= 12
        assert 20 <= len(str(article["summary"]).split()) <= 40
        assert 80 <= len(str(article["body"]).split()) <= 200
    assert articles[0]["id"] == "demo-000001"


def test_every_category_is_used_and_some_articles_have_a_related_second() -> None:
    articles = generate_articles(400, now=NOW)
    primaries = Counter(cats(a)[0] for a in articles)
    assert set(primaries) == set(DEMO_CATEGORIES)
    assert len(primaries) >= 8
    pairs = [cats(a) for a in articles if len(cats(a)) > 1]
    assert 0.08 <= len(pairs) / len(articles) <= 0.25
    for pair in pairs:
        assert len(pair) == 2 and pair[0] != pair[1]
        assert set(pair) <= set(DEMO_CATEGORIES)
    assert ["syria", "middle-east"] in pairs


def test_ids_and_urls_are_unique() -> None:
    articles = generate_articles(2000, now=NOW, id_prefix="t.run:1")
    assert len({a["id"] for a in articles}) == 2000
    assert len({a["url"] for a in articles}) == 2000
    assert all(str(a["id"]).startswith("t.run:1-") for a in articles)


def test_published_at_is_utc_in_the_window_and_never_in_the_future() -> None:
    articles = generate_articles(500, now=NOW, max_age_days=3)
    moments = [parse_utc(str(a["published_at"])) for a in articles]
    assert all(m.utcoffset() == timedelta(0) for m in moments)
    assert all(NOW - timedelta(days=3) <= m <= NOW for m in moments)
    assert moments == sorted(moments)  # ids follow publication order
    assert max(moments) - min(moments) > timedelta(days=2)  # spread, not bunched


def test_default_now_is_the_current_time() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    moments = [parse_utc(str(a["published_at"])) for a in generate_articles(50, max_age_days=1)]
    after = datetime.now(UTC)
    assert all(before - timedelta(days=1) <= m <= after for m in moments)


def test_categories_restriction_is_honoured() -> None:
    articles = generate_articles(300, now=NOW, categories=["syria", "middle-east"])
    used = {c for a in articles for c in cats(a)}
    assert used == {"syria", "middle-east"}
    only_tech = generate_articles(100, now=NOW, categories=["tech"])
    assert all(a["categories"] == ["tech"] for a in only_tech)
    assert all(str(a["url"]).startswith("https://news.example.com/tech/") for a in only_tech)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown"):
        generate_articles(10, categories=["tech", "astrology"])
    with pytest.raises(ValueError):
        generate_articles(10, categories=[])
    with pytest.raises(ValueError):
        generate_articles(10, id_prefix="bad{prefix}")
    with pytest.raises(ValueError):
        generate_articles(-1)
    assert generate_articles(0) == []


def test_write_jsonl_round_trips(tmp_path: Path) -> None:
    articles = generate_articles(150, now=NOW)
    path = tmp_path / "demo.jsonl"
    assert write_jsonl(path, articles) == 150
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 150
    assert [json.loads(line) for line in lines] == articles
    assert write_jsonl(str(tmp_path / "empty.jsonl"), []) == 0


def _vocabulary() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "devtools" / VOCABULARY_FILE).read_text("utf-8"))
    return data


def _bad_template(data: dict[str, Any]) -> None:
    data["headlines"].append("{actor_h} {verb} {topc}")


def _bad_suffix(data: dict[str, Any]) -> None:
    data["sentences"].append("{topic~went} up.")


def _bad_related(data: dict[str, Any]) -> None:
    data["categories"]["tech"]["related"].append("astrology")


@pytest.mark.parametrize(
    ("mistake", "message"),
    [(_bad_template, "{topc}"), (_bad_suffix, "{topic~went}"), (_bad_related, "astrology")],
)
def test_mistakes_in_the_vocabulary_file_fail_when_it_is_loaded(
    mistake: Callable[[dict[str, Any]], None], message: str
) -> None:
    data = _vocabulary()
    load_vocabulary(json.dumps(data))  # the shipped file is fine
    mistake(data)
    with pytest.raises(ValueError, match=re.escape(message)):
        load_vocabulary(json.dumps(data))


def test_mind_sample_command_writes_files_the_mind_readers_parse(tmp_path: Path) -> None:
    out = tmp_path / "mind sample"  # a space: the printed command must still be runnable
    command = [sys.executable, "-m", "devtools.mind_sample", str(out), "--users", "30"]
    command += ["--impressions", "200", "--seed", "3"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    news_path, behaviors_path = out / "news.tsv", out / "behaviors.tsv"
    evaluate = (
        f"newsfeed evaluate --news {shlex.quote(str(news_path))} "
        f"--behaviors {shlex.quote(str(behaviors_path))}"
    )
    assert result.stdout.splitlines() == [str(news_path), str(behaviors_path), evaluate]

    news_errors, behavior_errors = ParseErrors(), ParseErrors()
    news = read_news(news_path, news_errors)
    impressions = read_behaviors(behaviors_path, behavior_errors)
    assert news_errors.count == 0, news_errors.examples
    assert behavior_errors.count == 0, behavior_errors.examples
    assert len(news) == 800 and len(impressions) == 200
    assert {i.user for i in impressions} <= {f"U{1001 + n}" for n in range(30)}
    for impression in impressions:
        assert set(impression.history) | set(impression.candidates) <= set(news)
        assert 1 <= sum(impression.labels) < len(impression.labels)
