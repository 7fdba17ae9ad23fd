"""The learned ranker: fitted on logged pages, portable, explained, judged against tfidf."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from recommender.clicklog import LoggedEvent, Page, examples, pages_from_events
from recommender.evaluation import evaluate, make_rankers, split_time
from recommender.features import FEATURES, POSITION_FEATURE, ReaderState, features
from recommender.learned import LearnedRanker
from recommender.linear import LinearModel
from recommender.mind import Impression, News, ParseErrors, read_follows
from recommender.model import CorpusModel, Doc, fit
from recommender.ranker import RankRequest, merge_within_share, top_rows
from recommender.registry import make_ranker, uses_learned, uses_popularity
from recommender.tfidf import TfidfRanker
from recommender.training import MIN_CLICKS, train

NOW = 1_800_000_000.0
HOUR = 3600.0
WORDS = {
    "sport": "striker derby goal keeper penalty league cup coach tennis final match",
    "science": "telescope planet rover battery solar orbit station laser genome fossil",
}


def corpus(n: int = 60, seed: int = 1) -> CorpusModel:
    rng = random.Random(seed)
    docs = []
    for k in range(n):
        slug = "sport" if k % 2 else "science"
        text = " ".join(rng.sample(WORDS[slug].split(), 5))
        docs.append(Doc(f"a{k:03d}", text, (slug,), NOW - rng.uniform(0, 72) * HOUR))
    return fit(docs)


def linear(weights: dict[str, float], position: float = 0.0) -> LinearModel:
    """A model with these standardized weights (mean 0, scale 1) and the others 0."""
    names = (*FEATURES, POSITION_FEATURE)
    coef = tuple(weights.get(name, position if name == POSITION_FEATURE else 0.0) for name in names)
    return LinearModel(names, coef, (0.0,) * len(names), (1.0,) * len(names), 0.0)


# ---------------------------------------------------------------------------------------------
# Serving


def test_without_a_published_model_it_ranks_exactly_as_tfidf() -> None:
    model = corpus()
    request = RankRequest(("sport",), NOW, 15, history=(("a004", NOW - HOUR),))
    assert LearnedRanker().rank(model, request) == TfidfRanker().rank(model, request)


def test_a_model_naming_a_feature_this_build_lacks_falls_back_to_tfidf() -> None:
    model = corpus()
    foreign = LinearModel(("freshness", "mystery"), (1.0, 1.0), (0.0, 0.0), (1.0, 1.0), 0.0)
    request = RankRequest(("sport",), NOW, 10, learned=foreign)
    assert LearnedRanker().rank(model, request) == TfidfRanker().rank(model, request)


def test_it_orders_by_the_models_logit_with_position_at_its_serving_constant() -> None:
    model = corpus()
    learned = linear({"freshness": 2.0, "ctr": 1.0, "followed": 0.5}, position=-3.0)
    request = RankRequest(("sport",), NOW, 60, popularity={"a010": (9.0, 20.0)}, learned=learned)
    ranked = LearnedRanker(max_outside_share=1.0).rank(model, request)
    matrix = features(model, request)
    slope, offset = learned.slopes(FEATURES)
    expected = matrix @ slope + offset
    assert [r.id for r in ranked] == [str(model.ids[i]) for i in np.argsort(-expected)]
    assert [r.score for r in ranked] == pytest.approx(sorted(expected, reverse=True))


def test_reasons_name_the_signal_that_moved_each_item_most() -> None:
    model = corpus()
    row = model.row_of
    learned = linear({"ctr": 1.0, "history_similarity": 3.0, "followed": 0.2})
    popular = {"a011": (15.0, 20.0)}  # a sport story everyone clicks
    request = RankRequest(
        ("sport",), NOW, 60, history=(("a002", NOW - HOUR),), popularity=popular, learned=learned
    )
    ranked = {r.id: r for r in LearnedRanker().rank(model, request)}
    assert ranked["a011"].reason == "popular" and ranked["a011"].category == "sport"
    # The closest article to the one read is moved by the reading, and names that read.
    similarity = features(model, request)[:, FEATURES.index("history_similarity")]
    closest = str(model.ids[int(np.argmax(np.where(model.ids == "a002", -1, similarity)))])
    assert ranked[closest].reason == "read" and ranked[closest].because == "a002"
    assert row  # the corpus has rows


def test_reading_features_are_skipped_only_where_they_cannot_change_the_feed() -> None:
    model = corpus(400, seed=3)
    learned = linear({"freshness": 1.0, "history_similarity": 0.8, "history_pull": 0.4})
    request = RankRequest(
        ("science",),
        NOW,
        20,
        history=(("a010", NOW - HOUR), ("a013", NOW - 3 * HOUR)),
        learned=learned,
        exclude=frozenset({"a010", "a013"}),
    )
    ranked = LearnedRanker().rank(model, request)
    slope, offset = learned.slopes(FEATURES)
    full = features(model, request) @ slope + offset
    allowed = np.array([i not in request.exclude for i in model.ids])
    inside = allowed & model.members[:, model.slugs.index("science")]
    outside = allowed & ~inside
    expected = merge_within_share(
        full, top_rows(full, inside, 20), top_rows(full, outside, 4), 20, 0.2
    )
    assert [r.id for r in ranked] == [str(model.ids[i]) for i in expected]


def test_articles_outside_the_follows_keep_to_their_share_of_every_prefix() -> None:
    model = corpus(200, seed=4)
    learned = linear({"followed": -1.0, "freshness": 0.5})  # a model that prefers the others
    request = RankRequest(("sport",), NOW, 30, learned=learned)
    ranked = LearnedRanker(max_outside_share=0.2).rank(model, request)
    outside = [model.members[model.row_of[r.id], model.slugs.index("sport")] == 0 for r in ranked]
    for prefix in range(1, 31):
        assert sum(outside[:prefix]) <= math.floor(0.2 * prefix)
    assert sum(outside) == 6
    assert {r.reason for r, out in zip(ranked, outside, strict=True) if out} <= {
        "related",
        "latest",
        "popular",
    }


def test_the_registry_builds_it_for_experiments_and_callers_know_what_to_send() -> None:
    ranker = make_ranker("learned")
    assert isinstance(ranker, LearnedRanker)
    assert uses_learned(ranker) and uses_popularity(ranker)
    assert uses_learned(make_ranker("learned", {"mmr_lambda": 0.5}))
    assert not uses_learned(make_ranker("tfidf"))


# ---------------------------------------------------------------------------------------------
# The artifact


def test_the_artifact_is_plain_json_that_loads_without_scikit_learn() -> None:
    learned = linear({"ctr": 0.7, "freshness": -0.25})
    learned = LinearModel(
        learned.features, learned.coef, learned.mean, learned.scale, -1.5, {"clicks": 12}
    )
    text = learned.to_json()
    data = json.loads(text)
    assert data["format"] == 1 and data["kind"] == "logistic_regression"
    assert data["features"][-1] == POSITION_FEATURE
    again = LinearModel.from_json(text)
    assert again == learned and again.meta == {"clicks": 12}


@pytest.mark.parametrize(
    "text",
    [
        b"\x80\x04pickle",
        '{"format": 99, "kind": "logistic_regression"}',
        '{"format": 1, "kind": "logistic_regression", "features": ["a"], "coef": []}',
        '{"format": 1, "kind": "logistic_regression", "features": ["a"], "coef": [1],'
        ' "mean": [0], "scale": [0], "intercept": 0}',
        '{"format": 1, "kind": "logistic_regression", "features": ["a"], "coef": [NaN],'
        ' "mean": [0], "scale": [1], "intercept": 0}',
    ],
)
def test_anything_else_is_refused_with_a_value_error(text: str | bytes) -> None:
    with pytest.raises(ValueError):
        LinearModel.from_json(text)


# ---------------------------------------------------------------------------------------------
# Training


def simulated_pages(
    model: CorpusModel, n: int, *, seed: int, content: float, position: float
) -> list[Page]:
    """Readers following "sport" shown 10 articles in tfidf order; a click depends on a hidden
    appeal per article (``content``) and on the position (``position``)."""
    rng = random.Random(seed)
    appeal = {str(i): rng.gauss(0.0, 1.0) for i in model.ids}
    tfidf = TfidfRanker()
    pages = []
    for k in range(n):
        ids = [str(i) for i in model.ids]
        shown = rng.sample(ids, 10)
        request = RankRequest(("sport",), NOW + k, 10, candidates=frozenset(shown))
        order = [r.id for r in tfidf.rank(model, request)]
        order += [i for i in shown if i not in order]
        labels = []
        for pos, article_id in enumerate(order):
            logit = -2.5 + content * appeal[article_id] - position * np.log1p(pos)
            labels.append(int(rng.random() < 1 / (1 + np.exp(-logit))))
        pages.append(
            Page(f"u{k % 40}", NOW + k, tuple(order), tuple(range(10)), tuple(labels), ("sport",))
        )
    return pages


def test_it_learns_what_drives_clicks_and_beats_tfidf_on_later_pages() -> None:
    model = corpus(120, seed=5)
    pages = simulated_pages(model, 1500, seed=2, content=1.5, position=0.8)
    training = train(model, pages)
    assert training.model is not None and training.publishable, training.reason
    assert training.validation_auc is not None and training.baseline_auc is not None
    assert training.validation_auc > training.baseline_auc + 0.05
    weights = training.model.weights()
    # Appeal shows up as a high CTR; the top of the page draws clicks by itself.
    assert weights["ctr"] > 0 and weights[POSITION_FEATURE] < 0
    meta = training.model.meta
    assert meta["clicks"] == training.clicks and meta["impressions"] == 15_000
    assert meta["validation_auc"] == pytest.approx(training.validation_auc, abs=1e-6)


def test_position_alone_teaches_it_little_about_the_articles() -> None:
    model = corpus(120, seed=5)
    pages = simulated_pages(model, 1500, seed=4, content=0.0, position=1.5)
    training = train(model, pages)
    assert training.model is not None
    data = examples(model, pages)
    slope, _ = training.model.slopes((*FEATURES, POSITION_FEATURE))
    # What the articles' features add to the logit varies a fraction of what position does:
    # the clicks the top of the page drew are put down to the top, not to what tfidf put there.
    content = data.x[:, :-1] @ slope[:-1]
    position = data.x[:, -1] * slope[-1]
    assert slope[-1] < 0
    assert content.std() < position.std() / 2


def test_a_fit_no_better_than_tfidf_is_not_publishable_and_says_why() -> None:
    model = corpus(120, seed=5)
    # Clicks follow tfidf's order exactly and nothing else.
    pages = simulated_pages(model, 3000, seed=8, content=0.0, position=2.0)
    training = train(model, pages)
    assert not training.publishable
    assert "below the baseline" in training.reason


def test_too_few_clicks_publish_nothing() -> None:
    model = corpus()
    pages = simulated_pages(model, 30, seed=1, content=0.0, position=0.0)[: MIN_CLICKS // 10]
    training = train(model, pages)
    assert training.model is None and "too few clicks" in training.reason


# ---------------------------------------------------------------------------------------------
# Offline: `newsfeed evaluate --ranker learned`


def mind_log(model: CorpusModel, pages: list[Page]) -> tuple[dict[str, News], list[Impression]]:
    news = {
        str(i): News(str(i), model.slugs[int(model.members[r].argmax())], "", str(i), "")
        for r, i in enumerate(model.ids)
    }
    return news, [
        Impression(str(k), p.user, p.time, (), p.articles, p.labels) for k, p in enumerate(pages)
    ]


def test_evaluate_trains_on_the_earlier_part_and_scores_everyone_on_the_later_part() -> None:
    model = corpus(120, seed=5)
    pages = simulated_pages(model, 600, seed=2, content=1.5, position=0.8)
    news, log = mind_log(model, pages)
    trained = []
    rankers = make_rankers(["tfidf", "learned", "random"])
    results = evaluate(news, log, rankers, trained=trained.append)
    later = [i for i in log if i.time >= split_time(log, 0.5)]
    both = [i for i in later if 0 < sum(i.labels) < len(i.labels)]
    assert {m.impressions for m in results.values()} == {len(both)}
    assert trained[0].pages == len(log) - len(later)
    assert results["learned"].auc > results["tfidf"].auc


def test_the_learned_ranker_never_sees_the_scored_part() -> None:
    model = corpus(120, seed=5)
    pages = simulated_pages(model, 400, seed=2, content=1.5, position=0.8)
    news, log = mind_log(model, pages)
    cut = split_time(log, 0.5)
    flipped = [
        i if i.time < cut else Impression(i.id, i.user, i.time, (), i.candidates, (1,) * 10)
        for i in log
    ]
    fits: list = []
    for each in (log, flipped):
        evaluate(news, each, make_rankers(["learned"]), trained=fits.append)
    assert fits[0].model == fits[1].model


def test_reader_state_is_worked_out_once_per_request() -> None:
    model = corpus()
    request = RankRequest(("sport",), NOW, 10, history=(("a001", NOW - HOUR),))
    reader = ReaderState.of(model, request)
    np.testing.assert_array_equal(features(model, request, reader=reader), features(model, request))


# ---------------------------------------------------------------------------------------------
# The event stream as served pages


def test_the_stream_becomes_pages_with_positions_clicks_and_earlier_reads() -> None:
    events = [
        LoggedEvent("read", "u1", "old", NOW - 50),  # reached from elsewhere: history only
        LoggedEvent("impression", "u1", "b", NOW + 1, "f1", 1),
        LoggedEvent("impression", "u1", "a", NOW, "f1", 0),
        LoggedEvent("impression", "u2", "a", NOW + 5, "f2", 0),
        LoggedEvent("click", "u1", "b", NOW + 9, "f1", 1),
        LoggedEvent("read", "u1", "b", NOW + 30, "f1", 1),  # the same click, read: one label
        LoggedEvent("impression", "u1", "c", NOW + 60),  # an app that sends no feed_id
        LoggedEvent("impression", "u1", "a", NOW + 60),
        LoggedEvent("click", "u1", "c", NOW + 70),  # joined to the latest page showing it
        LoggedEvent("hide", "u2", "a", NOW + 6, "f2", 0),
    ]
    first, second, third = pages_from_events(events, {"u1": ("sport",)})
    assert (first.user, first.time, first.articles, first.positions, first.labels) == (
        "u1",
        NOW,
        ("a", "b"),
        (0, 1),
        (0, 1),
    )
    assert first.followed == ("sport",) and first.history == (("old", NOW - 50),)
    assert (second.user, second.labels, second.followed) == ("u2", (0,), ())
    assert third.articles == ("c", "a") and third.labels == (1, 0)
    # Reads before the page, newest first, an article once at its latest time.
    assert third.history == (("b", NOW + 30), ("old", NOW - 50))


def test_a_follows_file_gives_mind_readers_their_follows(tmp_path) -> None:
    path = tmp_path / "follows.tsv"
    path.write_text("U1\tsport science\nU2\t\nbroken line\nU1\tworld\n", encoding="utf-8")
    errors = ParseErrors()
    assert read_follows(path, errors) == {"U1": ("science", "sport"), "U2": ()}
    assert errors.count == 1
