"""`make simulate`: simulated readers on the real API, the learned ranker trained on their
clicks, compared offline with every ranker, then A/B-tested against tfidf.

Readers click by a hidden model this module alone knows (``SimReader``, ``SimStory``): topics they
like, inside and outside the categories they follow, and one some of them dislike (keyword
topics, most of which no ranker or feature names); how fresh a story is (each reader minds it
differently); each story's own appeal (a headline people take to or not, seen by the rankers
only through clicks); and where it sits on the page (each reader scrolls as far as they
please and looks less at lower items). Readers also read stories reached from elsewhere (a
link, a search): "read" events without a feed. They follow one or two categories, and their
activity is skewed: a few come back often.

Everything goes through the service as a client meets it (tokens, GET the feed and its next
page with the cursor, POST the events with feed_id and position); the model is trained by the
code `newsfeed train` runs, evaluated by the code `newsfeed evaluate --stream` runs, and the
A/B result is the experiment's own `GET /v1/experiments/{name}/results`.

Phases: (1) every reader is served tfidf for a while (the log); (2) the learned ranker is
trained on it and published if it beats tfidf on the latest pages; (3) offline, on that log:
the learned ranker fitted on the earlier half, every ranker scored on the later half; (4) an
experiment, half the readers on tfidf and half on learned, for as many sessions again.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from api import create_app
from api.extensions import EXTENSION
from bench import agnews
from bench.agnews import Story as AgStory
from cli.evaluate import metrics_table, training_line
from devtools.demo import DEMO_CATEGORIES, generate_articles
from devtools.demo_text import load_vocabulary
from devtools.redis_server import RedisServer
from feed.model.learning import TrainingOutcome, read_pages, serving_model, train_and_publish
from feed.readers.tokens import issue_token
from feed.services import Services
from recommender.evaluation import DEFAULT_RANKERS, LEARNED, evaluate_pages, make_rankers
from recommender.mind import format_time
from recommender.tfidf import TfidfRanker

SECRET = "simulation-secret-that-is-long-enough-for-hs256"
PAGE = 20  # items per feed page, as most clients ask
MAX_DEPTH = 2 * PAGE  # a reader looks at two pages at most
# Items on one screen: an app logs an impression for each item that came into view, so what a
# reader saw ends at a screen's end, not at the item they last clicked.
SCREEN = 5
AGE_SPREAD_HOURS = 72.0
EXPERIMENT = "learned-vs-tfidf"
CATEGORY_NAMES = {slug: name for slug, name in agnews.CATEGORIES.values()}


# ---------------------------------------------------------------------------------------------
# The hidden world: topics, stories, readers.


@dataclass(frozen=True)
class HiddenTopic:
    name: str
    category: str
    pattern: re.Pattern[str]


def _topic(name: str, category: str, words: str) -> HiddenTopic:
    return HiddenTopic(name, category, re.compile(rf"\b({words})\b", re.IGNORECASE))


# AG News topics: bench.agnews's ten, and more that appear nowhere else in the project.
AG_TOPICS = (
    *(HiddenTopic(t.name, t.category, t.pattern) for t in agnews.TOPICS),
    _topic("elections", "world", "election|elections|vote|voters|ballot|poll|polls"),
    _topic("nuclear", "world", "nuclear|iran|iranian|north korea|pyongyang|uranium"),
    _topic("terror", "world", "terror|terrorist|bomb|bombing|militants?|hostage|kidnapped"),
    _topic("tennis", "sports", "tennis|wimbledon|federer|roddick|agassi|davis cup"),
    _topic("soccer", "sports", "soccer|premier league|chelsea|arsenal|manchester|uefa|fifa"),
    _topic("basketball", "sports", "nba|basketball|lakers|pistons|shaq|o'neal"),
    _topic("golf", "sports", "golf|pga|woods|mickelson|ryder cup"),
    _topic("markets", "business", "stocks|dow|nasdaq|wall street|shares|investors"),
    _topic("earnings", "business", "profit|earnings|quarterly|revenue|forecast"),
    _topic("retail", "business", "wal-mart|retail|retailer|retailers|shoppers|holiday sales"),
    _topic("security", "tech", "virus|worm|hacker|hackers|spam|phishing|security flaw"),
    _topic("mobile", "tech", "phone|phones|mobile|wireless|cell|handset"),
    _topic("search", "tech", "google|search engine|yahoo|web search"),
    _topic("games", "tech", "video game|games|xbox|playstation|nintendo|halo"),
)


@dataclass(frozen=True)
class SimStory:
    id: str
    category: str
    title: str
    summary: str
    published: float
    topics: frozenset[str]
    appeal: float  # the headline's pull on anyone: hidden, seen only through clicks


Topics = tuple[HiddenTopic, ...]


def _stories_agnews(now: float, rng: random.Random) -> tuple[list[SimStory], Topics]:
    raw: list[AgStory] = agnews.load(now, seed=rng.randrange(1 << 30))
    return [_story(s.id, s.category, s.title, s.summary, s.published, rng) for s in raw], AG_TOPICS


def _stories_generated(now: float, rng: random.Random, count: int) -> tuple[list[SimStory], Topics]:
    wire = generate_articles(
        count,
        seed=rng.randrange(1 << 30),
        now=datetime.fromtimestamp(now, UTC),
        max_age_days=AGE_SPREAD_HOURS / 24,
        id_prefix="sim",
    )
    stories = [
        _story(
            str(a["id"]),
            str(a["categories"][0]),  # type: ignore[index]
            str(a["title"]),
            str(a["summary"]),
            datetime.fromisoformat(str(a["published_at"])).timestamp(),
            rng,
        )
        for a in wire
    ]
    # Topics: a few of each category's phrases in the generator's vocabulary, a story being
    # on one when its title or summary names it.
    lexicons = load_vocabulary().lexicons
    topics = tuple(
        _topic(phrase.lower().replace(" ", "-"), slug, re.escape(phrase))
        for slug in sorted({s.category for s in stories})
        for phrase in rng.sample(sorted(lexicons[slug].pools["topic"]), 4)
    )
    return stories, topics


def _story(
    story_id: str, category: str, title: str, summary: str, published: float, rng: random.Random
) -> SimStory:
    # A question or a number in the headline pulls a little more, whatever the story.
    quirk = 0.3 if ("?" in title or re.search(r"\d", title)) else 0.0
    return SimStory(
        story_id, category, title, summary, published, frozenset(), rng.gauss(0, 0.8) + quirk
    )


def tag_topics(stories: list[SimStory], topics: Sequence[HiddenTopic]) -> list[SimStory]:
    tagged = []
    for story in stories:
        text = f"{story.title} {story.summary}"
        found = frozenset(
            t.name for t in topics if t.category == story.category and t.pattern.search(text)
        )
        tagged.append(
            SimStory(
                story.id,
                story.category,
                story.title,
                story.summary,
                story.published,
                found,
                story.appeal,
            )
        )
    return tagged


@dataclass
class SimReader:
    """One simulated person; every number here is hidden from the service."""

    id: str
    follows: tuple[str, ...]
    likes: dict[str, float]  # topic -> how much it lifts a click (negative: dislikes)
    category_bias: dict[str, float]
    base: float  # a click's logit on an average story at the top
    freshness: float  # logit lost per day of a story's age
    appeal: float  # how much a story's appeal counts for them
    attention: float  # examination at position p is (1 + p) ** -attention
    depth: float  # mean number of items they scroll past
    sessions: int
    elsewhere: float  # chance per session of reading a story reached from elsewhere
    read: set[str] = field(default_factory=set)

    def utility(self, story: SimStory, now: float, clicks_so_far: int) -> float:
        age_days = max(now - story.published, 0.0) / 86400.0
        topical = sum(self.likes.get(t, 0.0) for t in story.topics)
        return (
            self.base
            + topical
            + self.category_bias.get(story.category, 0.0)
            - self.freshness * age_days
            + self.appeal * story.appeal
            - 0.6 * clicks_so_far  # each click leaves less appetite
        )


def make_readers(
    count: int, topics: Sequence[HiddenTopic], slugs: Sequence[str], rng: random.Random
) -> list[SimReader]:
    by_category: dict[str, list[str]] = defaultdict(list)
    for topic in topics:
        by_category[topic.category].append(topic.name)
    readers = []
    for n in range(count):
        home = rng.choice(list(by_category))
        follows = {home}
        if rng.random() < 0.4:
            follows.add(rng.choice([s for s in slugs if s != home]))
        likes: dict[str, float] = {}
        for _ in range(rng.choice((1, 1, 2, 2, 3))):  # topics inside their follows
            likes[rng.choice(by_category[rng.choice(sorted(follows))])] = rng.uniform(0.8, 2.2)
        if rng.random() < 0.6:  # and one they like outside them
            outside = [c for c in by_category if c not in follows]
            if outside:
                likes[rng.choice(by_category[rng.choice(outside)])] = rng.uniform(1.0, 2.5)
        if rng.random() < 0.3:
            disliked = rng.choice(by_category[home])
            if disliked not in likes:
                likes[disliked] = -rng.uniform(1.0, 2.0)
        bias = {
            slug: rng.uniform(0.0, 0.6) if slug in follows else -rng.uniform(0.0, 0.8)
            for slug in slugs
        }
        readers.append(
            SimReader(
                id=f"sim-{n:05d}",
                follows=tuple(sorted(follows)),
                likes=likes,
                category_bias=bias,
                base=rng.gauss(-2.6, 0.5),
                freshness=rng.uniform(0.0, 1.5),
                appeal=rng.uniform(0.3, 1.4),
                attention=rng.uniform(0.3, 1.1),
                depth=rng.uniform(4.0, 18.0),
                sessions=1 + min(int(rng.lognormvariate(1.6, 0.7)), 40),
                elsewhere=rng.uniform(0.0, 0.4),
            )
        )
    return readers


# ---------------------------------------------------------------------------------------------
# Sessions through the API.


@dataclass
class Shown:
    """A page a reader saw, for the MIND export: what they scrolled past, what they clicked."""

    user: str
    time: float
    history: tuple[str, ...]
    items: list[tuple[str, int]]


@dataclass
class Tally:
    sessions: int = 0
    impressions: int = 0
    clicks: int = 0
    elsewhere: int = 0
    seconds: float = 0.0

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions else math.nan


class World:
    """The service under test and the simulated people using it."""

    def __init__(
        self, client: FlaskClient, stories: list[SimStory], readers: list[SimReader], seed: int
    ) -> None:
        self.client = client
        self.stories = {s.id: s for s in stories}
        self.readers = readers
        self.rng = random.Random(seed)
        self._auth: dict[str, dict[str, str]] = {}
        self.shown: list[Shown] = []
        self.clicked: dict[str, list[str]] = defaultdict(list)  # reader -> clicks, in order
        self._by_topic: dict[str, list[SimStory]] = defaultdict(list)
        for story in stories:
            for topic in story.topics:
                self._by_topic[topic].append(story)

    def auth(self, reader: SimReader) -> dict[str, str]:
        found = self._auth.get(reader.id)
        if found is None:
            settings = self.client.application.extensions[EXTENSION].settings
            found = {"Authorization": f"Bearer {issue_token(settings, reader.id)}"}
            self._auth[reader.id] = found
        return found

    def follow(self) -> None:
        for reader in self.readers:
            response = self.client.put(
                f"/v1/users/{reader.id}/categories",
                json={"categories": list(reader.follows)},
                headers=self.auth(reader),
            )
            _expect(response, 200)

    def run(self, rounds: int, tally: Tally) -> None:
        """``rounds`` passes; in each, every reader with sessions left comes back with a
        chance that spreads their sessions over the rounds, in a random order."""
        started = time.perf_counter()
        left = {r.id: r.sessions for r in self.readers}
        for k in range(rounds):
            due = [
                r
                for r in self.readers
                if left[r.id] > 0 and self.rng.random() < left[r.id] / (rounds - k)
            ]
            self.rng.shuffle(due)
            for reader in due:
                left[reader.id] -= 1
                self.session(reader, tally)
        tally.seconds += time.perf_counter() - started

    def session(self, reader: SimReader, tally: Tally) -> None:
        tally.sessions += 1
        events: list[dict[str, Any]] = []
        if self.rng.random() < reader.elsewhere:
            story = self._from_elsewhere(reader)
            if story is not None:
                events.append(self._event(reader, "read", story.id, None, None))
                reader.read.add(story.id)
                self.clicked[reader.id].append(story.id)
                tally.elsewhere += 1
        depth = _screens(1 + int(self.rng.expovariate(1.0 / reader.depth)))
        cursor: str | None = None
        position = 0
        clicks = 0
        now = time.time()
        history = tuple(self.clicked[reader.id])
        page_items: list[tuple[str, int]] = []
        while position < depth:
            url = f"/v1/users/{reader.id}/feed?limit={PAGE}"
            if cursor:
                url += f"&cursor={cursor}"
            response = self.client.get(url, headers=self.auth(reader))
            _expect(response, 200)
            body = response.json or {}
            items = body["items"]
            if not items:
                break
            for item in items:
                if position >= depth:
                    break
                story = self.stories[item["id"]]
                events.append(
                    self._event(reader, "impression", story.id, body["feed_id"], position)
                )
                clicked = 0
                examined = self.rng.random() < (1.0 + position) ** -reader.attention
                if examined and story.id not in reader.read:
                    chance = 1.0 / (1.0 + math.exp(-reader.utility(story, now, clicks)))
                    if self.rng.random() < chance:
                        clicked = 1
                        clicks += 1
                        reader.read.add(story.id)
                        self.clicked[reader.id].append(story.id)
                        events.append(
                            self._event(reader, "click", story.id, body["feed_id"], position)
                        )
                        if self.rng.random() < 0.6:
                            events.append(
                                self._event(reader, "read", story.id, body["feed_id"], position)
                            )
                page_items.append((story.id, clicked))
                position += 1
                if clicked and self.rng.random() < 0.35:
                    depth = _screens(position)  # read enough for now: this screen was seen
            cursor = body.get("next_cursor")
            if not cursor:
                break
        tally.impressions += len(page_items)
        tally.clicks += sum(label for _, label in page_items)
        if page_items:
            self.shown.append(Shown(reader.id, now, history, page_items))
        for start in range(0, len(events), 500):
            batch = {"events": events[start : start + 500]}
            response = self.client.post("/v1/events", json=batch, headers=self.auth(reader))
            _expect(response, 202)

    def _from_elsewhere(self, reader: SimReader) -> SimStory | None:
        liked = [t for t, weight in reader.likes.items() if weight > 0]
        if not liked:
            return None
        pool = self._by_topic.get(self.rng.choice(liked), [])
        fresh = [s for s in pool if s.id not in reader.read]
        if not fresh:
            return None
        # Links people share are mostly recent ones.
        weights = [math.exp(-(time.time() - s.published) / 86400.0) for s in fresh]
        return self.rng.choices(fresh, weights)[0]

    @staticmethod
    def _event(
        reader: SimReader, kind: str, article: str, feed_id: str | None, position: int | None
    ) -> dict[str, Any]:
        event: dict[str, Any] = {"type": kind, "user_id": reader.id, "article_id": article}
        if feed_id is not None:
            event["feed_id"] = feed_id
            event["position"] = position
        return event


def _screens(items: int) -> int:
    """The items in view after scrolling past ``items``: whole screens, two pages at most."""
    return min(MAX_DEPTH, SCREEN * math.ceil(items / SCREEN))


def _expect(response: Any, status: int) -> None:
    if response.status_code != status:
        raise RuntimeError(f"{response.status_code}: {response.get_data(as_text=True)[:300]}")


# ---------------------------------------------------------------------------------------------
# The run.


@dataclass
class Figures:
    corpus: str
    readers: int
    logging: dict[str, Any]
    training: dict[str, Any]
    offline: dict[str, dict[str, float]]
    offline_training: str
    ab: dict[str, Any] = field(default_factory=dict)


def ingest(client: FlaskClient, admin: dict[str, str], stories: list[SimStory]) -> None:
    slugs = sorted({s.category for s in stories})
    for slug in slugs:
        name = CATEGORY_NAMES.get(slug) or DEMO_CATEGORIES.get(slug) or slug.title()
        _expect(client.put(f"/v1/categories/{slug}", json={"name": name}, headers=admin), 201)
    wire = [
        {
            "id": s.id,
            "url": f"https://sim.example.com/{s.id}",
            "title": s.title,
            "summary": s.summary,
            "categories": [s.category],
            "published_at": datetime.fromtimestamp(s.published, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "source": "Simulation",
        }
        for s in stories
    ]
    for start in range(0, len(wire), 1000):
        response = client.post(
            "/v1/articles", json={"articles": wire[start : start + 1000]}, headers=admin
        )
        _expect(response, 200)


def wait_for_model(client: FlaskClient, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get("/readyz")
        body = response.json or {}
        if response.status_code == 200 and body.get("model_corpus_version", -1) >= body.get(
            "corpus_version", 0
        ):
            return
        time.sleep(0.2)
    raise RuntimeError("the model did not catch up with the corpus")


def write_mind(directory: Path, world: World, shown: Sequence[Shown]) -> tuple[Path, ...]:
    """news.tsv, behaviors.tsv and follows.tsv of the logged pages, for `newsfeed evaluate`."""
    directory.mkdir(parents=True, exist_ok=True)
    news, behaviors, follows = (directory / n for n in ("news.tsv", "behaviors.tsv", "follows.tsv"))
    news.write_text(
        "".join(
            f"{s.id}\t{s.category}\t{s.category}\t{_clean(s.title)}\t{_clean(s.summary)}\n"
            for s in world.stories.values()
        ),
        encoding="utf-8",
    )
    lines = []
    for k, page in enumerate(shown, start=1):
        candidates = " ".join(f"{article}-{label}" for article, label in page.items)
        lines.append(
            f"{k}\t{page.user}\t{format_time(page.time)}\t{' '.join(page.history)}\t{candidates}\n"
        )
    behaviors.write_text("".join(lines), encoding="utf-8")
    follows.write_text(
        "".join(f"{r.id}\t{' '.join(r.follows)}\n" for r in world.readers), encoding="utf-8"
    )
    return news, behaviors, follows


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def start_experiment(client: FlaskClient, admin: dict[str, str]) -> None:
    definition = {
        "name": EXPERIMENT,
        "traffic": 1.0,
        "variants": [
            {"name": "control", "ranker": "tfidf", "params": {}, "weight": 1},
            {"name": "learned", "ranker": "learned", "params": {}, "weight": 1},
        ],
    }
    _expect(client.post("/v1/experiments", json=definition, headers=admin), 201)
    _expect(client.post(f"/v1/experiments/{EXPERIMENT}/start", headers=admin), 200)


def simulate(args: argparse.Namespace, server: RedisServer, out: Path) -> Figures:
    rng = random.Random(args.seed)
    now = time.time()
    if agnews.path() is not None and not args.generated:
        stories, topics = _stories_agnews(now, rng)
        corpus = f"AG News test split ({len(stories)} real stories)"
    else:
        stories, topics = _stories_generated(now, rng, args.articles)
        corpus = f"generated demo corpus ({len(stories)} stories)"
    stories = tag_topics(stories, topics)
    app = create_app(
        {
            "redis_url": server.url,
            "jwt_secret": SECRET,
            "reindex_mode": "thread",
            "rate_limit_enabled": False,
            "model_poll_seconds": 0.5,
            "log_level": "warning",
        }
    )
    svc: Services = app.extensions[EXTENSION]
    client = app.test_client()
    admin = {"Authorization": f"Bearer {issue_token(svc.settings, 'sim-admin', admin=True)}"}
    try:
        _log(f"{corpus}; ingesting")
        ingest(client, admin, stories)
        wait_for_model(client)
        slugs = sorted({s.category for s in stories})
        readers = make_readers(args.readers, topics, slugs, rng)
        world = World(client, stories, readers, args.seed)
        world.follow()

        logging_tally = Tally()
        # A reader comes back at most once a round.
        sessions = sum(min(r.sessions, args.rounds) for r in readers)
        _log(f"phase 1: {len(readers)} readers on tfidf, {sessions} sessions")
        world.run(args.rounds, logging_tally)
        _log(
            f"  {logging_tally.impressions:,} impressions, {logging_tally.clicks:,} clicks "
            f"(CTR {logging_tally.ctr:.4f}) in {logging_tally.seconds:.0f} s"
        )
        mind = write_mind(out, world, world.shown)

        _log("phase 2: `newsfeed train` on the stream")
        model = serving_model(svc.redis, svc.settings.live_window_days)
        baseline = TfidfRanker(half_life_hours=svc.settings.freshness_half_life_hours)
        outcome: TrainingOutcome = train_and_publish(svc.redis, model, baseline)
        training = outcome.as_json()
        _log(f"  {training}")

        _log("phase 3: offline, `newsfeed evaluate --stream --ranker learned ...`")
        pages, _ = read_pages(svc.redis)
        trained: list[Any] = []
        names = [*DEFAULT_RANKERS[:-1], LEARNED, "random"]
        offline = evaluate_pages(
            model, pages, make_rankers(names, seed=args.seed), trained=trained.append
        )
        offline_line = training_line(trained[0]) if trained else ""
        print(offline_line)
        print(metrics_table(offline))
        print(
            "\nthe same log as MIND files: newsfeed evaluate "
            f"--news {mind[0]} --behaviors {mind[1]} --follows {mind[2]} --ranker learned ...\n"
        )
        figures = Figures(
            corpus,
            len(readers),
            asdict(logging_tally) | {"ctr": logging_tally.ctr},
            training,
            {name: asdict(m) for name, m in offline.items()},
            offline_line,
        )
        if outcome.version is None or args.no_ab:
            _log("no A/B: nothing published" if outcome.version is None else "no A/B (--no-ab)")
            return figures

        _log("phase 4: A/B through the API, 50/50 tfidf vs learned")
        for reader in readers:
            reader.sessions = max(1, reader.sessions)
        start_experiment(client, admin)
        ab_tally = Tally()
        world.run(args.rounds, ab_tally)
        response = client.get(f"/v1/experiments/{EXPERIMENT}/results", headers=admin)
        _expect(response, 200)
        results = response.json or {}
        figures.ab = {"tally": asdict(ab_tally) | {"ctr": ab_tally.ctr}, "results": results}
        if args.json:  # before printing: a long run's figures are kept whatever happens next
            Path(args.json).write_text(json.dumps(asdict(figures), indent=1, default=str))
        print_ab(results)
        return figures
    finally:
        svc.keeper.stop()
        svc.redis.close()


def print_ab(results: dict[str, Any]) -> None:
    print(f"A/B {results.get('experiment', EXPERIMENT)} ({results.get('method', '')}):")
    for v in results.get("variants", []):
        line = (
            f"  {v['name']:<8} ({v['ranker']}): {v['users']} users, {v['impressions']:,} "
            f"impressions, {v['clicks']:,} clicks, CTR {v['ctr']:.4f}"
        )
        if not v.get("is_control") and v.get("relative_lift") is not None:
            ci = v.get("relative_lift_ci") or {}
            line += (
                f"; lift {v['relative_lift']:+.1%} (95% CI {ci.get('low', math.nan):+.1%} to "
                f"{ci.get('high', math.nan):+.1%}), p = {v['p_value']:.2g} (delta method)"
            )
        print(line)
    srm = results.get("srm") or {}
    print(f"  SRM: p = {srm.get('p_value', math.nan):.3g}, mismatch: {srm.get('mismatch')}")


def _log(message: str) -> None:
    print(f"[simulate {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=12, help="passes over the readers")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--generated", action="store_true", help="the demo corpus, not AG News")
    parser.add_argument("--articles", type=int, default=8000, help="generated corpus size")
    parser.add_argument("--no-ab", action="store_true", help="stop after the offline table")
    parser.add_argument("--out", help="where the MIND files go (default: a temporary directory)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "mind"
        with RedisServer(Path(tmp) / "redis", appendonly=False) as server:
            figures = simulate(args, server, out)
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(figures), indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
