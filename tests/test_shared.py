"""One file of a model's arrays per host (feed/model/shared.py): mapped by every process that
loads the version, read-only, ranking as a model in memory does; old versions cleaned up."""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import redis

from bench import agnews
from feed.model import shared
from feed.model import store as model_store
from feed.model.keeper import ModelKeeper
from feed.model.shared import KEEP_FILES, SharedModels
from feed.model.store import ModelMeta
from recommender.model import PER_ARTICLE, CorpusModel, Doc, fit
from recommender.ranker import RankRequest
from recommender.tfidf import TfidfRanker
from tests.test_model import appended, docs_from_demo

DOCS = docs_from_demo(300)
NOW = max(d.published for d in DOCS) + 3600
FITTED = fit(DOCS)


def publish(r: redis.Redis, model: CorpusModel = FITTED) -> ModelMeta:
    return model_store.publish(
        r,
        model.to_bytes(),
        corpus_version=1,
        snapshot_at=time.time(),
        fitted_at=time.time(),
        articles=model.size,
    )


def load(r: redis.Redis, directory: Path | str, meta: ModelMeta) -> CorpusModel:
    """As a web process loads a version: its keeper reads Redis, then the host's file."""
    keeper = ModelKeeper(
        r, live_window_days=30, poll_seconds=60, auto_reindex=False, share_dir=str(directory)
    )
    try:
        return keeper.model_for(meta.version).model
    finally:
        keeper.stop()


def requests(model: CorpusModel) -> Iterator[RankRequest]:
    yield RankRequest((model.slugs[0],), NOW, 50)
    yield RankRequest(tuple(model.slugs[1:4]), NOW, 50)
    # A reading history: profiles from the vectors themselves.
    history = tuple((str(i), NOW - 60) for i in model.ids[:5])
    yield RankRequest((model.slugs[0],), NOW, 50, history=history)


def ranking(model: CorpusModel) -> list[list[tuple[str, float, str]]]:
    ranker = TfidfRanker()
    return [
        [(r.id, round(r.score, 6), r.reason) for r in ranker.rank(model, request)]
        for request in requests(model)
    ]


def in_file(array: np.ndarray) -> bool:
    """Whether ``array`` is a view of a memory map, not of this process's heap."""
    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)


def private_kb(path: Path) -> int:
    """This process's own pages (kB) in its mappings of ``path``: the ones it wrote, copied
    on write (anonymous memory; the file's pages are the page cache's, however dirty)."""
    total, inside = 0, False
    for line in Path(f"/proc/{os.getpid()}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:  # a mapping's first line
            inside = fields[-1] == str(path)
        elif inside and fields[0] == "Anonymous:":
            total += int(fields[1])
    return total


def mapped_files(directory: Path) -> list[str]:
    """Mappings of this process into files of ``directory``."""
    maps = Path(f"/proc/{os.getpid()}/maps").read_text().splitlines()
    return [line.split()[-1] for line in maps if str(directory) in line]


def test_two_loads_of_a_version_map_one_file_and_rank_as_in_memory(redis_client, tmp_path):
    meta = publish(redis_client)
    first = load(redis_client, tmp_path, meta)
    second = load(redis_client, tmp_path, meta)
    files = list(tmp_path.glob("model-*"))
    assert len(files) == 1
    assert set(mapped_files(tmp_path)) == {str(files[0])}
    assert first is not second
    in_memory = ranking(CorpusModel.from_bytes(FITTED.to_bytes()))
    assert ranking(first) == ranking(second) == in_memory


def test_every_array_of_a_mapped_model_is_read_only(redis_client, tmp_path):
    model = load(redis_client, tmp_path, publish(redis_client))
    arrays = model.to_arrays(derived=True)
    assert model.centroids is not None  # from the file, not derived again
    for name, array in arrays.items():
        if name not in ("format", "slugs", "vectors_shape", "centroids_shape"):
            assert not array.flags.writeable and in_file(array), name
    with pytest.raises(ValueError, match="read-only"):
        model.sims[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        model.vectors.data[0] = 1.0
    # An extended model's arrays are the file's too (its private map), as read-only: the
    # rows past them are the next extension's to write.
    extended = model.with_articles([Doc("new", "vaccine trial", (model.slugs[0],), NOW)])
    arrays = extended.to_arrays()
    for name in (*PER_ARTICLE, "terms", "idf"):
        assert not arrays[name].flags.writeable and in_file(arrays[name]), name
    assert in_file(arrays["vectors_data"]) and in_file(arrays["vectors_indices"])
    with pytest.raises(ValueError, match="read-only"):
        extended.ids[-1] = "other"


def test_articles_extend_a_mapped_model_in_the_files_room_without_writing_the_file(
    redis_client, tmp_path
):
    meta = publish(redis_client)
    model = load(redis_client, tmp_path, meta).prepared()
    (path,) = tmp_path.glob("model-*")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    fitted = ranking(model)
    batches = [
        [Doc("breaking-1", "vaccine trial results hospital doctors", (model.slugs[0],), NOW)],
        [
            Doc("breaking-2", "election campaign vote", (model.slugs[1],), NOW - 60),
            Doc("breaking-3", "storm floods coast", (model.slugs[2], model.slugs[0]), NOW),
        ],
        [Doc("b-4", "markets rally on earnings", (model.slugs[3],), NOW - 7200)],
    ]
    extended, in_memory = model, CorpusModel.from_bytes(FITTED.to_bytes())
    reference = in_memory
    for batch in batches:  # each extension appends to the last one's rows
        extended = extended.with_articles(batch)
        in_memory = in_memory.with_articles(batch)
        reference = appended(reference, batch)
        assert ranking(extended) == ranking(in_memory) == ranking(reference)
        assert extended.storage is model.storage and extended.per_article is model.per_article
        for array in (extended.vectors.data, *(getattr(extended, n) for n in PER_ARTICLE)):
            assert in_file(array)  # no copy in this process's heap
    assert extended.size == model.size + 4
    assert list(extended.ids[-4:]) == ["breaking-1", "breaking-2", "breaking-3", "b-4"]
    assert ranking(model) == fitted, "the model extended is left as it was"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    # Another process mapping the file now sees the fitted model, not this one's articles.
    again = load(redis_client, tmp_path, meta)
    assert again.size == model.size
    assert ranking(again) == ranking(CorpusModel.from_bytes(FITTED.to_bytes()))


def test_a_process_owns_only_the_pages_its_articles_were_written_to(redis_client, tmp_path):
    model = load(redis_client, tmp_path, publish(redis_client)).prepared()
    (path,) = tmp_path.glob("model-*")
    ranking(model)  # every array read: read pages stay the host's
    assert private_kb(path) == 0
    docs = [Doc(f"new-{n}", f"story {n} about vaccines", (model.slugs[0],), NOW) for n in range(3)]
    extended = model.with_articles(docs[:1]).with_articles(docs[1:])
    ranking(extended)
    # At most two pages of each array appended to: the one its rows ended in, the next.
    grown = len(PER_ARTICLE) + len(shared.GROWABLE)
    assert 0 < private_kb(path) <= grown * 2 * mmap.PAGESIZE // 1024


def test_a_replaced_row_or_a_new_category_extends_a_copy(redis_client, tmp_path):
    """What cannot be appended in place is copied, ranks as in memory, and leaves the file."""
    meta = publish(redis_client)
    model = load(redis_client, tmp_path, meta).prepared()
    (path,) = tmp_path.glob("model-*")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    known = str(model.ids[7])
    batches = [
        [Doc(known, "election campaign vote", (model.slugs[1],), NOW)],  # replaced
        [Doc("space-1", "rocket launch orbit", ("space-race",), NOW)],  # a new category
        [Doc("after", "vaccine trial results", (model.slugs[0],), NOW)],
    ]
    extended, in_memory = model, CorpusModel.from_bytes(FITTED.to_bytes())
    for batch in batches:
        extended = extended.with_articles(batch)
        in_memory = in_memory.with_articles(batch)
        assert ranking(extended) == ranking(in_memory)
        assert not in_file(extended.sims) and not in_file(extended.ids)
    assert extended.row_of[known] == 7 and extended.slugs[-1] == "space-race"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("unusable", ["a file in the way", "others can write"])
def test_a_directory_it_cannot_use_falls_back_to_memory_with_one_warning(
    redis_client, tmp_path, caplog, unusable
):
    if unusable == "a file in the way":
        (tmp_path / "file").write_text("")
        directory = tmp_path / "file" / "models"
    else:
        directory = tmp_path / "open"
        directory.mkdir()
        directory.chmod(0o777)
    meta = publish(redis_client)
    models = SharedModels(str(directory))
    artifact = FITTED.to_bytes()
    with caplog.at_level(logging.WARNING, logger=shared.__name__):
        first = models.load(meta, lambda: artifact)
        second = models.load(meta, lambda: artifact)
    assert [r.message for r in caplog.records if "unusable" in r.message] == [
        caplog.records[0].message
    ]
    assert first is not None and second is not None
    assert first.sims.flags.writeable and not mapped_files(directory)
    assert ranking(second) == ranking(CorpusModel.from_bytes(artifact))


def test_no_directory_keeps_the_model_in_memory(redis_client, tmp_path):
    model = load(redis_client, "", publish(redis_client))
    assert model.sims.flags.writeable
    assert ranking(model) == ranking(FITTED)


def test_older_versions_files_are_deleted_once_newer_ones_are_written(redis_client, tmp_path):
    stale = tmp_path / f".tmp-dead{shared.SUFFIX}"
    stale.write_bytes(b"half")
    os.utime(stale, (0, 0))  # a writer that died long ago
    metas = [publish(redis_client) for _ in range(4)]
    for meta in metas:
        load(redis_client, tmp_path, meta)
    kept = sorted(p.name for p in tmp_path.iterdir() if p.name != shared.LOCK_NAME)
    assert kept == sorted(shared.file_name(m) for m in metas[-KEEP_FILES:])


def test_a_damaged_file_is_written_again(redis_client, tmp_path):
    meta = publish(redis_client)
    load(redis_client, tmp_path, meta)
    (path,) = tmp_path.glob("model-*")
    path.write_bytes(path.read_bytes()[:5000])
    model = load(redis_client, tmp_path, meta)
    assert ranking(model) == ranking(FITTED)
    assert path.stat().st_size > 5000


def test_processes_loading_together_map_the_first_ones_file(redis_client, tmp_path):
    """A host's workers start together: each must map the one file, not write its own."""
    meta = publish(redis_client)
    with ThreadPoolExecutor(4) as pool:  # flock is per open file: threads contend as processes
        models = list(pool.map(lambda _: load(redis_client, tmp_path, meta), range(4)))
    (path,) = tmp_path.glob("model-*")
    inodes = {os.stat(m).st_ino for m in set(mapped_files(tmp_path))}
    assert inodes == {path.stat().st_ino}
    assert all(ranking(m) == ranking(models[0]) for m in models)


def test_two_stores_at_the_same_version_get_different_files():
    meta = ModelMeta(3, 10, 100.0, 101.0, 50)
    other = ModelMeta(3, 10, 100.0, 102.0, 50)
    assert shared.file_name(meta) != shared.file_name(other)
    assert shared.file_name(meta) == shared.file_name(ModelMeta(3, 10, 100.0, 101.0, 50))


def test_an_empty_model_round_trips_through_a_file(tmp_path):
    meta = ModelMeta(1, 0, 0.0, 0.0, 0)
    model = SharedModels(str(tmp_path)).share(meta, fit([]))
    assert model.size == 0 and list(tmp_path.glob("model-*"))
    assert np.array_equal(model.gram, fit([]).gram)


def test_an_artifact_is_read_in_ranges(redis_client, monkeypatch):
    """A connection's parser keeps a buffer as large as its largest reply: read in ranges."""
    meta = publish(redis_client)
    monkeypatch.setattr(model_store, "READ_CHUNK_BYTES", 1000)
    assert model_store.load_artifact(redis_client, meta.version) == FITTED.to_bytes()
    assert model_store.load_artifact(redis_client, meta.version + 1) is None


@pytest.mark.skipif(agnews.path() is None, reason="AG News is not on this machine")
def test_on_real_news_a_mapped_model_extended_by_breaking_stories_ranks_as_in_memory(
    redis_client, tmp_path
):
    docs = [story.doc() for story in agnews.load(now=NOW)]
    fitted, breaking = docs[:-60], docs[-60:]
    model = fit(fitted)
    mapped = load(redis_client, tmp_path, publish(redis_client, model)).prepared()
    in_memory = reference = CorpusModel.from_bytes(model.to_bytes())
    assert ranking(mapped) == ranking(in_memory)
    for start in range(0, len(breaking), 20):  # three extensions, each on the last
        batch = breaking[start : start + 20]
        mapped = mapped.with_articles(batch)
        in_memory = in_memory.with_articles(batch)
        reference = appended(reference, batch)
        assert ranking(mapped) == ranking(in_memory) == ranking(reference)
    assert in_file(mapped.vectors.data) and mapped.size == len(docs)
