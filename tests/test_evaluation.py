"""Offline MIND evaluation: tie-aware metrics, the MIND readers, the replay and the command."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from cli.evaluate import evaluate_command
from devtools.mind_sample import MALFORMED_BEHAVIOR_LINES, MALFORMED_NEWS_LINES, write_mind_sample
from recommender.baselines import PopularRanker
from recommender.diversity import MMRRanker
from recommender.evaluation import (
    DEFAULT_RANKERS,
    HISTORY_SPACING_SECONDS,
    RANKERS,
    OfflineMetrics,
    candidate_scores,
    evaluate,
    make_rankers,
    model_of,
    score_log,
)
from recommender.metrics import auc_score, impression_metrics, mrr_score, ndcg_score
from recommender.mind import (
    Impression,
    News,
    ParseErrors,
    format_time,
    parse_time,
    read_behaviors,
    read_news,
)
from recommender.model import CorpusModel
from recommender.ranker import Ranked, RankRequest
from recommender.registry import make_ranker

# ---------------------------------------------------------------------------------------------
# OfflineMetrics


def test_metrics_match_hand_computed_values() -> None:
    # labels [1, 0, 0, 1, 0], scores [0.9, 0.8, 0.3, 0.5, 0.1]
    # Order by descending score: candidates 0, 1, 3, 2, 4 -> ranked labels [1, 0, 1, 0, 0].
    # AUC: clicked scores {0.9, 0.5} vs skipped {0.8, 0.3, 0.1}: 0.9 beats all 3, 0.5 beats 2
    #      of them, so 5 of 6 pairs -> 5/6.
    # MRR: clicks at ranks 1 and 3 -> (1/1 + 1/3) / 2 = 2/3.
    # DCG: gains 2^y - 1 = y, discount log2(rank + 1): 1/log2(2) + 1/log2(4) = 1.5; the ideal
    #      order [1, 1, 0, 0, 0] gives 1 + 1/log2(3). nDCG@5 = nDCG@10 = 1.5 / (1 + 1/log2 3)
    #      (only five candidates); nDCG@2 = 1 / (1 + 1/log2 3), the second rank being a miss.
    labels = [1, 0, 0, 1, 0]
    scores = [0.9, 0.8, 0.3, 0.5, 0.1]
    ideal = 1 + 1 / math.log2(3)
    assert auc_score(labels, scores) == pytest.approx(5 / 6)
    assert mrr_score(labels, scores) == pytest.approx(2 / 3)
    assert ndcg_score(labels, scores, 5) == pytest.approx(1.5 / ideal)  # 0.9197
    assert ndcg_score(labels, scores, 10) == pytest.approx(1.5 / ideal)
    assert ndcg_score(labels, scores, 2) == pytest.approx(1 / ideal)  # 0.6131
    assert impression_metrics(np.array(labels), np.array(scores)) == pytest.approx(
        (5 / 6, 2 / 3, 1.5 / ideal, 1.5 / ideal)
    )


def test_perfect_and_reversed_rankings() -> None:
    labels = np.array([0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    perfect = labels.astype(float)
    # Three clicks at ranks 1-3: MRR averages 1/rank over the clicks, so even a perfect order
    # scores (1 + 1/2 + 1/3) / 3, not 1.
    assert impression_metrics(labels, perfect) == pytest.approx((1.0, 11 / 18, 1.0, 1.0))
    auc, mrr, ndcg5, ndcg10 = impression_metrics(labels, -perfect)
    assert auc == 0.0
    assert mrr == pytest.approx((1 / 10 + 1 / 11 + 1 / 12) / 3)
    assert ndcg5 == 0.0  # the clicks rank 10th to 12th: only the 10th is within the top 10
    assert ndcg10 == pytest.approx((1 / math.log2(11)) / (1 + 1 / math.log2(3) + 1 / 2))


def test_ties_are_in_no_order() -> None:
    # A tied (clicked, skipped) pair counts 1/2 for AUC. For MRR and nDCG a tie group is in a
    # uniformly random order: [0, 1] tied puts the click at rank 1 or 2, each with chance 1/2.
    assert auc_score([0, 1], [0.3, 0.3]) == 0.5
    assert mrr_score([0, 1], [0.3, 0.3]) == mrr_score([1, 0], [0.3, 0.3]) == 0.75
    # One click among three tied: each rank holds it with chance 1/3.
    expected_dcg = (1 + 1 / math.log2(3) + 1 / 2) / 3
    assert ndcg_score([0, 1, 0], [1.0, 1.0, 1.0], 10) == pytest.approx(expected_dcg)
    # A tie group below a clear winner: ranks 2-3 hold one click of two, (1/2)(1/2 + 1/3).
    assert mrr_score([0, 1, 0], [0.9, 0.2, 0.2]) == pytest.approx(5 / 12)
    # Ties among equal labels change nothing.
    assert impression_metrics(np.array([1, 1, 0]), np.array([0.5, 0.5, 0.1])) == pytest.approx(
        (1.0, 0.75, 1.0, 1.0)
    )


def _metrics_over_orders(labels: list[int], scores: list[float]) -> np.ndarray:
    """The tie-free metrics averaged over every way of breaking the ties: each permutation of
    the candidates breaks them by position, and so gives each order of every tie group equally
    often."""
    n = len(labels)
    y = np.array(labels)
    clicked, skipped = y == 1, y == 0
    total = np.zeros(4)
    orders = list(itertools.permutations(range(n)))
    for order in orders:
        # Rank by score, then by position in this permutation: no two candidates tie.
        broken = np.empty(n)
        broken[np.lexsort((-np.array(order), scores))] = np.arange(n)
        total += [
            np.mean(broken[clicked][:, None] > broken[skipped][None, :]),
            _reference_mrr(y, broken),
            _reference_dcg(y, broken, 5) / _reference_dcg(y, y, 5),
            _reference_dcg(y, broken, 10) / _reference_dcg(y, y, 10),
        ]
    return total / len(orders)


@pytest.mark.parametrize(
    ("labels", "scores"),
    [
        ([1, 0, 0, 0, 0, 1, 0], [0.0] * 7),  # one tie group: a ranker that knows nothing
        ([0, 1, 0, 1, 0, 0, 0], [3, 3, 2, 2, 2, 1, 1]),
        ([0, 0, 1, 0, 1, 1], [1, 1, 1, 1, 0, 0]),
    ],
)
def test_ties_score_the_mean_over_every_order_of_them(labels: list[int], scores: list) -> None:
    got = impression_metrics(np.array(labels), np.array(scores, dtype=float))
    assert got == pytest.approx(_metrics_over_orders(labels, [float(s) for s in scores]))


def test_one_tie_group_scores_exactly_a_random_order() -> None:
    # Closed forms for p clicks among n candidates in random order: MRR is H_n / n (each rank
    # holds a click with chance p/n), AUC 1/2, nDCG@k the expected DCG p/n * sum of discounts.
    labels = [0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    n, p = len(labels), sum(labels)
    discounts = 1 / np.log2(np.arange(2, n + 2))
    auc, mrr, ndcg5, ndcg10 = impression_metrics(np.array(labels), np.full(n, 0.42))
    assert auc == 0.5
    assert mrr == pytest.approx(sum(1 / r for r in range(1, n + 1)) / n)
    for k, got in ((5, ndcg5), (10, ndcg10)):
        assert got == pytest.approx(p / n * discounts[:k].sum() / discounts[:p].sum())


def test_auc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="clicked"):
        auc_score([1, 1], [0.2, 0.1])


def _reference_dcg(y: np.ndarray, s: np.ndarray, k: int) -> float:
    # The MIND evaluation script's definitions (github.com/msnews/MIND, evaluate.py).
    top = np.take(y, np.argsort(s)[::-1][:k])
    return float(np.sum((2**top - 1) / np.log2(np.arange(len(top)) + 2)))


def _reference_mrr(y: np.ndarray, s: np.ndarray) -> float:
    ranked = np.take(y, np.argsort(s)[::-1])
    return float(np.sum(ranked / (np.arange(len(ranked)) + 1)) / np.sum(ranked))


def test_metrics_agree_with_sklearn_and_the_mind_script() -> None:
    rng = np.random.default_rng(1)
    for trial in range(200):
        n = int(rng.integers(2, 40))
        labels = (rng.random(n) < 0.25).astype(np.int64)
        labels[rng.choice(n, 2, replace=False)] = [0, 1]
        scores = rng.random(n)
        if trial % 2:  # many ties: AUC must still match roc_auc_score exactly
            scores = np.round(scores, 1)
            assert auc_score(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
            continue
        auc, mrr, ndcg5, ndcg10 = impression_metrics(labels, scores)
        assert auc == pytest.approx(roc_auc_score(labels, scores))
        assert mrr == pytest.approx(_reference_mrr(labels, scores))
        for k, got in ((5, ndcg5), (10, ndcg10)):
            want = _reference_dcg(labels, scores, k) / _reference_dcg(labels, labels, k)
            assert got == pytest.approx(want)


# ---------------------------------------------------------------------------------------------
# Readers


def test_parse_time_reads_mind_times_as_utc() -> None:
    morning = datetime(2019, 11, 15, 8, 55, 22, tzinfo=UTC).timestamp()
    assert parse_time("11/15/2019 8:55:22 AM") == morning == 1573808122
    assert parse_time("11/15/2019 8:55:22 PM") == morning + 12 * 3600
    assert parse_time("1/2/2020 12:05:00 AM") == datetime(2020, 1, 2, 0, 5, tzinfo=UTC).timestamp()
    with pytest.raises(ValueError):
        parse_time("2019-11-15 08:55:22")


@pytest.mark.parametrize(
    "text", ["11/15/2019 8:55:22 AM", "11/15/2019 12:00:00 PM", "1/2/2020 12:05:09 AM"]
)
def test_format_time_writes_what_parse_time_reads(text: str) -> None:
    assert format_time(parse_time(text)) == text


def test_behaviors_reader_skips_and_counts_malformed_lines(tmp_path: Path) -> None:
    good = "1\tU1\t11/15/2019 8:55:22 AM\tN1 N2\tN3-1 N4-0"
    lines = [
        good,
        "2\tU2\t11/15/2019 9:00:00 AM\t\tN3-0 N5-1",  # empty history: fine
        "",  # blank: ignored, not counted
        "3\tU3\t11/15/2019 9:00:00 AM\tN1",  # four fields
        "4\tU4\tyesterday\tN1\tN3-1",  # unreadable time
        "5\tU5\t11/15/2019 9:00:00 AM\tN1\tN3 N4",  # unlabelled (MIND test split)
        "6\tU6\t11/15/2019 9:00:00 AM\tN1\tN3-1 N4-7",  # label not 0/1
        "7\tU7\t11/15/2019 9:00:00 AM\tN1\t",  # no candidates
        "\tU8\t11/15/2019 9:00:00 AM\tN1\tN3-1",  # no impression id
        "9\tU9\t11/15/2019 9:00:00 AM\tN1\tN3-1\textra",  # six fields
    ]
    path = tmp_path / "behaviors.tsv"
    raw = "\r\n".join(lines).encode() + b"\r\n10\tU\xff\t11/16/2019 1:00:00 PM\t\tN3-1\n"
    path.write_bytes(raw)  # CRLF endings and an invalid UTF-8 byte in a user id

    errors = ParseErrors()
    impressions = read_behaviors(path, errors)

    assert [i.id for i in impressions] == ["1", "2", "10"]
    assert errors.count == 7
    assert len(errors.examples) == 5 and errors.examples[0].startswith("line 4:")
    first = impressions[0]
    assert first == Impression(
        "1", "U1", parse_time("11/15/2019 8:55:22 AM"), ("N1", "N2"), ("N3", "N4"), (1, 0)
    )
    assert impressions[1].history == ()
    assert impressions[2].user == "U\ufffd"


def test_news_reader_tolerates_missing_abstracts(tmp_path: Path) -> None:
    path = tmp_path / "news.tsv"
    path.write_text(
        "N1\tsports\tsoccer\tA title\tAn abstract\thttps://x\t[]\t[]\n"
        "N2\tnews\tnewsworld\tNo abstract\t\thttps://x\t[]\t[]\n"
        "N3\tnews\tnewsworld\tCut after the title\n"
        "\n"
        "N4\tnews\n"  # too few fields
        "\tnews\tnewsworld\tNo id\n"
        "N1\tnews\tnewsworld\tA repeated id keeps its first line\n",
        encoding="utf-8",
    )
    errors = ParseErrors()
    news = read_news(path, errors)
    assert list(news) == ["N1", "N2", "N3"]
    assert news["N1"] == News("N1", "sports", "soccer", "A title", "An abstract")
    assert news["N2"].abstract == "" and news["N3"].abstract == ""
    assert errors.count == 2


# ---------------------------------------------------------------------------------------------
# The replay: the service's rankers, sent the requests the service would send

T0 = parse_time("11/15/2019 8:00:00 AM")
HOUR = 3600.0


def test_the_evaluated_rankers_are_the_ones_the_service_serves() -> None:
    rankers = make_rankers(seed=5)
    assert list(rankers) == list(DEFAULT_RANKERS)
    # The learned ranker is asked for by name: it splits the log in time (tests/test_learned.py).
    assert list(RANKERS) == [*DEFAULT_RANKERS[:-1], "learned", "random"]
    for name in ("tfidf", "popular", "latest"):
        assert rankers[name] == make_ranker(name)
    assert rankers["mmr"] == make_ranker("tfidf", {"mmr_lambda": 0.7})
    assert isinstance(rankers["mmr"], MMRRanker)
    assert rankers["random"].name == "random"
    with pytest.raises(ValueError, match="nope"):
        make_rankers(["tfidf", "nope"])


def test_the_model_is_news_tsv_published_when_first_seen() -> None:
    news = {f"N{k}": News(f"N{k}", "sports", "soccer", f"derby report {k}", "") for k in range(4)}
    log = [
        Impression("2", "U2", T0 + HOUR, ("N0",), ("N1", "N2"), (1, 0)),
        Impression("1", "U1", T0, ("N1",), ("N9",), (1,)),  # N9: not in news.tsv
    ]
    model = model_of(news, log)
    assert list(model.ids) == ["N0", "N1", "N2", "N3"]
    assert model.slugs == ["sports"]
    published = dict(zip(model.ids, model.published, strict=True))
    assert published["N0"] == published["N2"] == T0 + HOUR
    assert published["N1"] == T0  # in a history first: a history is an appearance too
    assert published["N3"] == T0 - 30 * 86400  # never in the log: old


@dataclass(frozen=True)
class RecordingPopular(PopularRanker):
    """The popular ranker, keeping every request it is sent."""

    requests: list[RankRequest] = field(default_factory=list, compare=False)

    def rank(self, model: CorpusModel, request: RankRequest) -> list[Ranked]:
        self.requests.append(request)
        return super().rank(model, request)


@dataclass(frozen=True)
class Indifferent:
    """A ranker that cannot tell candidates apart: all of them, in id order, one score."""

    requests: list[RankRequest] = field(default_factory=list)
    name: str = "indifferent"

    def rank(self, model: CorpusModel, request: RankRequest) -> list[Ranked]:
        self.requests.append(request)
        known = sorted(i for i in request.candidates or () if i in model.row_of)
        return [Ranked(i, 1.0, "latest", "") for i in known]


def test_requests_carry_the_impression_history_and_earlier_popularity() -> None:
    news = {f"N{k}": News(f"N{k}", "news", "world", f"harbour vote {k}", "") for k in range(5)}
    log = [
        Impression("1", "U1", T0, ("N3", "N4"), ("N1", "N2"), (1, 0)),
        Impression("2", "U2", T0, (), ("N1", "N2"), (0, 0)),  # same second: not yet counted
        Impression("3", "U1", T0 + 24 * HOUR, ("N4",), ("N2", "N1", "N9"), (1, 0, 0)),
    ]
    popular, other = RecordingPopular(), Indifferent()
    list(score_log(news, log, {"popular": popular, "other": other}))

    first, second, third = popular.requests
    assert first == RankRequest(
        followed=(),
        now=T0,
        size=2,
        history=(("N3", T0 - 2 * HISTORY_SPACING_SECONDS), ("N4", T0 - HISTORY_SPACING_SECONDS)),
        popularity={},
        candidates=frozenset({"N1", "N2"}),
    )
    assert second.popularity == {} and second.history == ()
    assert third.now == T0 + 24 * HOUR and third.size == 3
    assert third.candidates == frozenset({"N1", "N2", "N9"})
    # Both shown twice a day earlier, N1 clicked once: one half-life (24 h) halves the counts.
    assert third.popularity == {"N1": (0.5, 1.0), "N2": (0.0, 1.0)}
    # Rankers that do not use popularity are sent none, as the service sends them none.
    assert [r.popularity for r in other.requests] == [{}, {}, {}]
    assert [r.history for r in other.requests] == [r.history for r in popular.requests]


def test_the_ranking_is_the_order_and_equal_neighbours_tie() -> None:
    ranked = [
        Ranked("A", 0.9, "history", "s"),
        Ranked("B", 0.5, "history", "s"),
        Ranked("C", 0.5, "history", "s"),
        Ranked("X", 0.45, "history", "s"),  # not a candidate: ignored
        Ranked("D", 0.4, "history", "s"),
        Ranked("E", 0.5, "history", "s"),  # equal to B and C, but not next to them
    ]
    scores = candidate_scores(["F", "E", "D", "C", "B", "A"], ranked)
    # F was not returned: last. Only the order matters, not the scores' values.
    np.testing.assert_array_equal(scores, [-4, -3, -2, -1, -1, 0])
    np.testing.assert_array_equal(candidate_scores(["A", "B"], []), [0, 0])


def test_a_ranker_that_cannot_tell_candidates_apart_scores_exactly_the_random_order() -> None:
    # Neither the order the ranker lists ties in (ids: the clicked ones sort first here) nor
    # the order of the impression (clicks listed first in 1 and 3) may earn anything.
    news = {i: News(i, "news", "world", f"story {i}", "") for i in "ABCDEFGHz"}
    log = [
        Impression("1", "U1", T0, (), ("A", "z", "F", "G"), (1, 0, 0, 0)),
        Impression("2", "U2", T0 + 60, ("z",), ("C", "D", "B", "H", "G", "F"), (0, 0, 1, 0, 0, 1)),
        Impression("3", "U3", T0 + 120, (), ("E", "z", "D"), (1, 0, 0)),
    ]
    results = evaluate(news, log, {"indifferent": Indifferent()})["indifferent"]
    expected = np.mean(
        [_metrics_over_orders(list(i.labels), [0.0] * len(i.labels)) for i in log], axis=0
    )
    got = (results.auc, results.mrr, results.ndcg5, results.ndcg10)
    assert got == pytest.approx(tuple(expected))
    assert results.auc == 0.5


def test_news_missing_from_news_tsv_rank_last_and_tied() -> None:
    news = {
        "N1": News("N1", "sports", "soccer", "Striker scores twice in derby", ""),
        "N2": News("N2", "sports", "soccer", "Keeper saves penalty in derby", ""),
    }
    log = [
        Impression("1", "U1", T0, ("N1", "N404"), ("N2", "N404", "N405"), (0, 1, 0)),
        Impression("2", "U1", T0 + 60, ("N406",), ("N405", "N1"), (0, 1)),
    ]
    results = evaluate(news, log)
    # 1: every ranker ranks N2, the only candidate it knows, first; N404 (clicked) and N405
    # share ranks 2-3. AUC: the click loses to N2 and ties N405, 1/4. MRR: (1/2)(1/2 + 1/3).
    # DCG: (1/2)(1/log2 3 + 1/2) against an ideal 1. 2: N1 first, clicked: all metrics 1.
    ndcg = (0.5 * (1 / math.log2(3) + 0.5) + 1) / 2
    for name, metrics in results.items():
        assert metrics == OfflineMetrics(
            pytest.approx(0.625), pytest.approx((5 / 12 + 1) / 2), ndcg, ndcg, 2, 0
        ), name


# ---------------------------------------------------------------------------------------------
# On a generated MIND sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_mind_sample(tmp_path_factory.mktemp("mind"), users=300, impressions=2000)


@pytest.fixture(scope="module")
def results(sample: tuple[Path, Path]) -> dict[str, OfflineMetrics]:
    news_path, behaviors_path = sample
    return evaluate(read_news(news_path), read_behaviors(behaviors_path))


def test_sample_is_readable_mind_with_its_malformed_lines(sample: tuple[Path, Path]) -> None:
    news_errors, behavior_errors = ParseErrors(), ParseErrors()
    news = read_news(sample[0], news_errors)
    impressions = read_behaviors(sample[1], behavior_errors)
    assert (len(news), len(impressions)) == (800, 2000)
    assert news_errors.count == MALFORMED_NEWS_LINES
    assert behavior_errors.count == MALFORMED_BEHAVIOR_LINES
    assert all(10 <= len(i.candidates) <= 20 and 1 <= sum(i.labels) <= 3 for i in impressions)
    assert all(c in news for i in impressions for c in (*i.history, *i.candidates))
    days = {datetime.fromtimestamp(i.time, UTC).date() for i in impressions}
    assert len(days) == 4


def test_random_is_a_fair_baseline(results: dict[str, OfflineMetrics]) -> None:
    assert list(results) == list(DEFAULT_RANKERS)
    assert results["random"].auc == pytest.approx(0.5, abs=0.05)
    assert all(m.impressions == 2000 and m.skipped == 0 for m in results.values())


@pytest.mark.parametrize("name", ["tfidf", "mmr"])
def test_content_rankers_beat_random_clearly(results: dict[str, OfflineMetrics], name: str) -> None:
    ours, baseline = results[name], results["random"]
    assert ours.auc > baseline.auc + 0.1
    assert ours.ndcg10 > baseline.ndcg10 + 0.1
    assert ours.mrr > baseline.mrr and ours.ndcg5 > baseline.ndcg5


def test_popular_and_latest_beat_random(results: dict[str, OfflineMetrics]) -> None:
    # The sample's clicks favour appealing and fresh news: what these two can learn.
    baseline = results["random"]
    for name in ("popular", "latest"):
        assert results[name].auc > baseline.auc + 0.05
        assert results[name].ndcg10 > baseline.ndcg10 + 0.05


def test_scores_do_not_depend_on_later_impressions(sample: tuple[Path, Path]) -> None:
    news = read_news(sample[0])
    log = sorted(read_behaviors(sample[1]), key=lambda i: i.time)[:400]
    full = {i.id: scores for i, scores in score_log(news, log, make_rankers(seed=3))}
    for impression, scores in score_log(news, log[:200], make_rankers(seed=3)):
        for name, values in scores.items():
            np.testing.assert_array_equal(values, full[impression.id][name], err_msg=name)


# ---------------------------------------------------------------------------------------------
# No ranker sees the future


def _future_only_log(pairs: int, future_offset: float) -> tuple[dict[str, News], list[Impression]]:
    """Pair k shows (b_k, a_k) once, a_k clicked, both new to the log and alike in every way a
    ranker can see then. At ``+future_offset`` seconds, a_k is clicked and b_k skipped three
    times each (single-class impressions: never evaluated, but rankers may learn from them),
    and the user's later history holds a_k. Only the future separates a_k from b_k."""
    start = parse_time("11/15/2019 8:00:00 AM")
    news: dict[str, News] = {}
    log: list[Impression] = []
    for k in range(pairs):
        a, b = f"A{k}", f"B{k}"
        news[a] = News(a, "news", "newsworld", f"harbour budget vote {k}", "")
        news[b] = News(b, "news", "newsworld", f"harbour budget vote {k}", "")
        now = start + 60 * k
        later = now + future_offset
        log += [Impression(f"f{k}-{j}", f"U{k}", later, (a,), (a,), (1,)) for j in range(3)]
        log += [Impression(f"g{k}-{j}", f"U{k}", later, (a,), (b,), (0,)) for j in range(3)]
        log.append(Impression(f"p{k}", f"U{k}", now, (), (b, a), (0, 1)))
    return news, log


@pytest.mark.parametrize("offset", [7 * 86400, 0.0], ids=["days-later", "same-second"])
def test_no_ranker_learns_from_the_future(offset: float) -> None:
    news, log = _future_only_log(200, offset)
    results = evaluate(news, log)
    assert list(results) == list(DEFAULT_RANKERS)
    for name, metrics in results.items():
        assert metrics.impressions == 200 and metrics.skipped == 1200
        # Nothing before the impression separates a_k from b_k: a deterministic ranker can do
        # no better than a tie, which counts as chance.
        bound = 0.65 if name == "random" else 0.5
        assert metrics.auc <= bound, name


def test_the_future_signal_is_real_once_it_is_the_past() -> None:
    news, log = _future_only_log(200, -3600.0)
    assert evaluate(news, log, make_rankers(["popular"]))["popular"].auc == 1.0


# ---------------------------------------------------------------------------------------------
# The command


def test_cli_prints_all_metrics_per_ranker(tmp_path: Path) -> None:
    news_path, behaviors_path = write_mind_sample(tmp_path, users=40, impressions=300, seed=3)
    result = CliRunner().invoke(
        evaluate_command,
        ["--news", str(news_path), "--behaviors", str(behaviors_path), "--seed", "1"],
    )
    assert result.exit_code == 0, result.output
    header, _rule, *rows = result.stdout.splitlines()
    for title in ("AUC", "MRR", "nDCG@5", "nDCG@10"):
        assert title in header
    table = {row.split()[0]: row.split()[1:] for row in rows[: len(DEFAULT_RANKERS)]}
    assert list(table) == list(DEFAULT_RANKERS)
    assert all(0.0 <= float(table[name][0]) <= 1.0 for name in table)
    assert table["tfidf"][1].startswith("(+")  # the lift over random
    assert "300 impressions evaluated, 0 skipped" in result.stdout
    assert f"skipped {MALFORMED_BEHAVIOR_LINES} malformed lines" in result.stderr
    assert "evaluating" not in result.stderr  # no progress bar on a short run


def test_cli_shows_progress_on_long_runs_and_adds_the_baseline(sample: tuple[Path, Path]) -> None:
    news_path, behaviors_path = sample
    result = CliRunner().invoke(
        evaluate_command,
        ["--news", str(news_path), "--behaviors", str(behaviors_path), "--ranker", "latest"],
    )
    assert result.exit_code == 0, result.output
    rows = [line.split()[0] for line in result.stdout.splitlines()[2:4]]
    assert rows == ["latest", "random"]
    assert "evaluating" in result.stderr


def test_cli_rejects_a_log_without_impressions(tmp_path: Path) -> None:
    news_path = tmp_path / "news.tsv"
    news_path.write_text("N1\tnews\tnewsworld\tTitle\n", encoding="utf-8")
    behaviors_path = tmp_path / "behaviors.tsv"
    behaviors_path.write_text("not a behaviors line\n", encoding="utf-8")
    args = ["--news", str(news_path), "--behaviors", str(behaviors_path)]
    result = CliRunner().invoke(evaluate_command, args)
    assert result.exit_code == 1
    assert "no readable impressions" in result.stderr
    result = CliRunner().invoke(evaluate_command, [*args, "--ranker", "nope"])
    assert result.exit_code == 2
