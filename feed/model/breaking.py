"""Breaking news: bring a loaded model up to the corpus by vectorising the articles written
since its fit, so a new or edited article ranks at once rather than after the next refit."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from feed.corpus import articles
from feed.model import versions
from recommender.model import CorpusModel, Doc

# Articles a process vectorises on top of one fitted model. Past this (a bulk ingest) it waits
# for the refit instead: vectorising tens of thousands of articles would hold every web
# process's GIL for seconds, and a refit re-weighs the vocabulary for them anyway.
MAX_CHANGES = 10_000


@dataclass(frozen=True)
class CaughtUp:
    model: CorpusModel
    corpus_version: int  # every article write up to this corpus version is in ``model``
    changes: int  # change log entries applied


def catch_up(
    r: redis.Redis, model: CorpusModel, since: int, *, live_since: float, budget: int
) -> CaughtUp | None:
    """``model``, which holds the corpus up to version ``since``, with every article written
    after it. None when the change log cannot say within ``budget`` entries (a bulk write, or
    a log trimmed past ``since``): the caller waits for a refit.

    The articles are read after the log, so they may be newer than the version answered:
    the model then holds more, never less, and the newer write is applied again next time.
    """
    if budget <= 0:
        return None
    changes = versions.changes_since(r, since, budget)
    if not changes.complete:
        return None
    if not changes.ids:
        return CaughtUp(model, changes.corpus, 0)
    docs = [
        Doc(a.id, a.text, a.categories, a.published_at.timestamp())
        for a in articles.read_many(r, changes.ids)
        # None: deleted since (builds exclude it by the deleted set). Outside the live window
        # an article is not fitted either, unless the model has it already: then it is updated.
        if a is not None and (a.published_at.timestamp() >= live_since or a.id in model.row_of)
    ]
    return CaughtUp(model.with_articles(docs), changes.corpus, len(changes.ids))
