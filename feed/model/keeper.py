"""Keeps this process's copy of the shared model current, and refits it when the corpus moves."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from feed.exceptions import ServiceUnavailable
from feed.model import breaking, versions
from feed.model import store as model_store
from feed.model.reindex import fit_under_lock, release_lock
from feed.model.shared import SharedModels
from feed.model.store import ModelMeta
from recommender.model import CorpusModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    meta: ModelMeta
    model: CorpusModel
    # Every article write up to this corpus version is in ``model``: the fit's snapshot, or
    # later once the articles written since were vectorised into it (feed/model/breaking.py).
    corpus_version: int
    changes: int = 0  # change log entries vectorised on top of the fit

    @classmethod
    def fitted(cls, meta: ModelMeta, model: CorpusModel) -> LoadedModel:
        return cls(meta, model, meta.corpus_version)


class ModelKeeper:
    """One per process; a daemon thread loads newer models and fits when the corpus is ahead.

    Requests never wait for a fit: they rank with the newest published model, which is
    loaded (a few MB) on the first miss that sees its version, if the thread has not already,
    and extended with the articles written since it was fitted (``model_at``).
    """

    def __init__(
        self,
        r: redis.Redis,
        *,
        live_window_days: float,
        poll_seconds: float,
        auto_reindex: bool,
        request_reindex: Callable[[int], object] | None = None,
        share_dir: str = "",
    ) -> None:
        self._redis = r
        self._window = live_window_days
        self._poll = poll_seconds
        self._auto_reindex = auto_reindex
        # Queue mode: told the corpus version to cover, it asks a worker to fit (enqueues a
        # job, deduplicated) instead of this process fitting.
        self._request_reindex = request_reindex
        # The processes of a host map one file of each model's arrays (feed/model/shared.py);
        # no directory: this process holds its own copy.
        self._models = SharedModels(share_dir)
        self._loaded: LoadedModel | None = None
        self._load_lock = threading.Lock()
        # One extension at a time: requests that miss together after a write wait for it.
        self._extend_lock = threading.Lock()
        # A model version whose extension gave up (too many changes): ranked as fitted until
        # the next model, without asking the change log on every build.
        self._stalled = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        # The token of a reindex lock this process won but could not release (Redis went away
        # during the fit); released on a later round rather than left to its 10-minute TTL.
        self._unreleased_lock: str | None = None

    @property
    def loaded(self) -> LoadedModel | None:
        return self._loaded

    def model_for(self, version: int) -> LoadedModel:
        """The model with this version (normally the one already in memory)."""
        self.start()
        current = self._loaded
        if current is not None and current.meta.version == version:
            return current
        if version == 0:
            self.poke()
            raise ServiceUnavailable("no model has been fitted yet; retry in a few seconds")
        with self._load_lock:
            current = self._loaded
            if current is None or current.meta.version != version:
                current = self._load(version) or current
        if current is None:
            raise ServiceUnavailable("the current model is not readable yet; retry shortly")
        return current

    def model_at(self, version: int, corpus: int) -> LoadedModel:
        """The model with this version, holding every article of corpus version ``corpus``.

        The articles written since its fit are vectorised into it once per corpus version in
        this process (every process does the same from Redis). When that is not possible (a
        bulk write past ``breaking.MAX_CHANGES``) the model is answered as it is, and its
        ``corpus_version`` tells the caller the answer lacks articles.
        """
        loaded = self.model_for(version)
        if loaded.corpus_version >= corpus or loaded.meta.version == self._stalled:
            return loaded
        with self._extend_lock:
            latest = self._loaded  # another request may have extended it meanwhile
            if latest is not None and latest.meta.version == loaded.meta.version:
                loaded = max(loaded, latest, key=lambda m: m.corpus_version)
            if loaded.corpus_version >= corpus or loaded.meta.version == self._stalled:
                return loaded
            return self._extend(loaded)

    def _extend(self, loaded: LoadedModel) -> LoadedModel:
        caught_up = breaking.catch_up(
            self._redis,
            loaded.model,
            loaded.corpus_version,
            live_since=time.time() - self._window * 86400,
            budget=breaking.MAX_CHANGES - loaded.changes,
        )
        if caught_up is None:
            self._stalled = loaded.meta.version
            log.warning(
                "model %s: over %s articles written since its fit; ranking without them until "
                "the next fit",
                loaded.meta.version,
                breaking.MAX_CHANGES,
            )
            return loaded
        extended = LoadedModel(
            loaded.meta,
            caught_up.model,
            caught_up.corpus_version,
            loaded.changes + caught_up.changes,
        )
        with self._load_lock:
            current = self._loaded
            # Kept unless a newer model (or a further extension) was loaded meanwhile.
            if current is None or (
                current.meta.version == extended.meta.version
                and current.corpus_version < extended.corpus_version
            ):
                self._loaded = extended
        return extended

    def poke(self) -> None:
        """Ask the thread to look now (after this process changed the corpus)."""
        self.start()
        self._wake.set()

    def start(self) -> None:
        # A fork (gunicorn worker) inherits the object but not the thread: start one per pid.
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        with self._load_lock:
            if self._pid == os.getpid() and self._thread is not None:
                return
            self._pid = os.getpid()
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="model-keeper", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=30)
        self._thread = None

    def tick(self) -> None:
        """One round of upkeep: load a newer model, fit one if the corpus is ahead of it."""
        self._release_reindex_lock()
        current = versions.read(self._redis)
        loaded = self._loaded
        if current.model and (loaded is None or loaded.meta.version != current.model):
            with self._load_lock:
                self._load(current.model)
            loaded = self._loaded
        if loaded is not None and not loaded.model.is_prepared:
            # Here rather than in the first request after a write (0.1 s at 100k articles).
            self._prepare(loaded)
        # Behind: no model, a current model this build cannot read, or a corpus that moved on.
        behind = (
            loaded is None
            or loaded.meta.version != current.model
            or loaded.meta.corpus_version < current.corpus
        )
        if self._auto_reindex and behind:
            if self._request_reindex is not None:
                self._request_reindex(current.corpus)
            else:
                self.refit()

    def _prepare(self, loaded: LoadedModel) -> None:
        prepared = LoadedModel(
            loaded.meta, loaded.model.prepared(), loaded.corpus_version, loaded.changes
        )
        with self._load_lock:
            if self._loaded is loaded:  # not replaced meanwhile
                self._loaded = prepared

    def refit(self) -> bool:
        """Fit and publish a model unless another process is already doing it."""
        outcome = fit_under_lock(
            self._redis, live_window_days=self._window, unreleased=self._keep_unreleased
        )
        if outcome.result is not None:
            meta = outcome.result.meta
            self._loaded = LoadedModel.fitted(meta, self._models.share(meta, outcome.result.model))
        return outcome.won

    def _keep_unreleased(self, token: str) -> None:
        self._unreleased_lock = token

    def _release_reindex_lock(self) -> None:
        """Release the reindex lock a fit of this process could not release (Redis went away
        during it), now that Redis may answer again; the lock only lapses by its TTL if this
        process dies too. Each round tries until a release succeeds."""
        token = self._unreleased_lock
        self._unreleased_lock = None
        if token is not None:
            release_lock(self._redis, token, self._keep_unreleased)

    def _load(self, version: int) -> LoadedModel | None:
        meta = model_store.load_meta(self._redis, version)
        if meta is None:
            return None
        try:
            # The artifact (tens of MB at 100k articles) is read only when no process of the
            # host has written the model's file yet (feed/model/shared.py).
            model = self._models.load(meta, lambda: model_store.load_artifact(self._redis, version))
            if model is None:
                return None
        except ValueError as exc:  # written by another build: the next tick refits
            log.error("model %s is unreadable here (%s); it will be refitted", version, exc)
            return None
        self._loaded = LoadedModel.fitted(meta, model)
        log.info("loaded model %s (%s articles)", meta.version, meta.articles)
        return self._loaded

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except redis.RedisError as exc:
                log.warning("model upkeep skipped: %s", exc)
            except Exception:  # keep the thread alive; the next round retries
                log.exception("model upkeep failed")
            self._wake.wait(self._poll)
            self._wake.clear()
