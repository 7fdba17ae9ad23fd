"""The fitted TF-IDF corpus model: article-to-category similarities, shipped as one artifact."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from sklearn.preprocessing import normalize

from recommender.row_index import RowIndex, build_table
from recommender.rows import Storage, capacity_for, set_rows, spare_copy
from recommender.vocabulary import EMPTY_VOCABULARY, Vocabulary, make_vectorizer

# Bumped whenever the arrays below change meaning; older artifacts are then refitted.
ARTIFACT_FORMAT = 4
# The arrays with a row per article, besides the vectors: an extension appends to each.
PER_ARTICLE = ("ids", "published", "members", "sims")


@dataclass(frozen=True)
class Doc:
    id: str
    text: str
    categories: tuple[str, ...]
    published: float  # epoch seconds


@dataclass
class CorpusModel:
    """What ranking needs, precomputed at fit time so a cold feed is a few vector operations.

    ``sims[i, c]`` is the cosine between article ``i`` and the centroid of category ``c``;
    ``gram`` holds the centroids' pairwise dot products, so the norm of any sum of centroids
    (a user profile) is known without touching the vocabulary. ``vectors`` keeps the
    L2-normalised TF-IDF rows themselves, for profiles built from a reading history.
    ``vocabulary`` vectorises articles written after the fit (``with_articles``).
    """

    ids: NDArray[np.str_]
    published: NDArray[np.float64]
    slugs: list[str]
    members: NDArray[np.bool_]  # (n_articles, n_categories)
    sims: NDArray[np.float32]  # (n_articles, n_categories)
    gram: NDArray[np.float64]  # (n_categories, n_categories)
    vectors: sparse.csr_matrix  # (n_articles, n_terms), rows L2-normalised
    vocabulary: Vocabulary = EMPTY_VOCABULARY
    # Centroids (rows L2-normalised) of the categories the fit knew, the first ones of
    # ``slugs``; None: computed from ``vectors`` and ``members`` when first needed.
    centroids: sparse.csr_matrix | None = None
    # Holds ``vectors``' entries with room to append (rows.py); None: copied on first need.
    storage: Storage | None = None
    # ``ids``' hash table (recommender/row_index.py), when the model came from a file that
    # holds one; None: ``row_of`` is a dict built on first need.
    row_table: NDArray[np.signedinteger[Any]] | None = None
    # Holds ``ids``, ``published``, ``members`` and ``sims`` with room to append rows (the
    # PER_ARTICLE arrays); None: copied on the first extension.
    per_article: Storage | None = None

    @property
    def size(self) -> int:
        return len(self.ids)

    @cached_property
    def row_of(self) -> Mapping[str, int]:
        """Row of each article id, built once per loaded model (read from the arrays of a
        mapped one, which the host's processes share)."""
        if self.row_table is not None:
            return RowIndex(self.ids, self.row_table)
        return {str(article_id): row for row, article_id in enumerate(self.ids)}

    def category_index(self, slugs: Sequence[str]) -> list[int]:
        position = {s: i for i, s in enumerate(self.slugs)}
        return [position[s] for s in slugs if s in position]

    @cached_property
    def fitted_centroids(self) -> sparse.csr_matrix:
        """The fitted categories' centroids; those of a loaded artifact are derived once."""
        if self.centroids is not None:
            return self.centroids
        return _centroids(self.vectors, self.members)

    @property
    def is_prepared(self) -> bool:
        """Whether ``prepared`` has nothing left to do."""
        built = "row_of" in self.__dict__ and "fitted_centroids" in self.__dict__
        return self.storage is not None and built

    def prepared(self) -> CorpusModel:
        """This model, ready to take articles: its row index and centroids built, and its
        vectors in a storage with room to append them (one copy, unless it came with one: a
        model mapped from a host's file has that room in the file). Ranks the same."""
        if self.storage is not None:
            self.row_of, self.fitted_centroids  # noqa: B018 (cached: built here, off requests)
            return self
        vectors, storage = spare_copy(self.vectors)
        model = replace(self, vectors=vectors, centroids=self.fitted_centroids, storage=storage)
        model.row_of = self.row_of
        return model

    def vectorize(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """TF-IDF rows of new texts with this model's vocabulary and IDF (no refit)."""
        if self.vocabulary.size != self.vectors.shape[1]:  # a model built without one
            return sparse.csr_matrix((len(texts), self.vectors.shape[1]), dtype=np.float32)
        return self.vocabulary.transform(texts)

    def with_articles(self, docs: Sequence[Doc]) -> CorpusModel:
        """A new model with ``docs`` vectorised into it: a known id's row is replaced, a new
        one appended. This model is left as it is (requests may be ranking with it).

        The fitted categories keep their centroids, so every other row keeps its similarities;
        a category the fit did not know gets the centroid of its articles here, as a fit
        would compute it. A refit later re-weighs everything.

        New articles of fitted categories are written past this model's rows, into the room
        of its storages (recommender/rows.py), which a mapped model has in the host's file:
        only the pages written become this process's own. Anything else (a replaced row, a
        category new since the fit) is written into copies, with room for the next articles.
        """
        latest = {doc.id: doc for doc in docs}  # the last version of an id wins
        if not latest:
            return self
        docs = list(latest.values())
        n = self.size
        slugs = self.slugs + sorted({s for d in docs for s in d.categories} - set(self.slugs))
        column = {slug: j for j, slug in enumerate(slugs)}
        index = self.row_of
        new_rows: dict[str, int] = {}  # new ids' rows, after the model's
        rows = np.empty(len(docs), dtype=np.intp)
        for j, doc in enumerate(docs):
            found = index.get(doc.id)
            rows[j] = new_rows.setdefault(doc.id, n + len(new_rows)) if found is None else found
        total = n + len(new_rows)
        row_of = (
            index.with_added(new_rows) if isinstance(index, RowIndex) else {**index, **new_rows}
        )
        new_ids = np.array([d.id for d, row in zip(docs, rows, strict=True) if row >= n], np.str_)
        fitted = self.fitted_centroids
        fixed = fitted.shape[0]
        fresh = self.vectorize([d.text for d in docs])
        vectors, storage = set_rows(self.vectors, self.storage, fresh, rows)

        appending = len(new_rows) == len(docs)
        per_article = self._per_article_storage(total, len(slugs), new_ids, appending=appending)
        ids, published, members, sims = (per_article[name] for name in PER_ARTICLE)
        ids[n:total] = new_ids
        published[rows] = [d.published for d in docs]
        members[rows] = False
        for row, doc in zip(rows, docs, strict=True):
            members[row, [column[s] for s in doc.categories]] = True
        sims[rows, :fixed] = (fresh @ fitted.T).toarray()
        centroids = fitted
        if len(slugs) > fixed:  # categories new since the fit: centroids of their articles now
            # Only rows added or replaced since the fit can be in them.
            holders = np.flatnonzero(members[:total, fixed:].any(axis=1))
            added = _centroids(vectors[holders], members[holders, fixed:])
            sims[:total, fixed:] = vectors @ added.T.toarray()
            centroids = sparse.vstack([fitted, added], format="csr")
        gram = np.asarray((centroids @ centroids.T).toarray(), dtype=np.float64)
        gram[:fixed, :fixed] = self.gram[:fixed, :fixed]

        # Read-only: the rows past ``total`` are the next extension's to write, and these
        # stay as they are for the requests ranking with this model meanwhile.
        ids, published, members, sims = (
            _read_only(a[:total]) for a in (ids, published, members, sims)
        )
        extended = CorpusModel(
            ids=ids,
            published=published,
            slugs=slugs,
            members=members,
            sims=sims,
            gram=gram,
            vectors=vectors,
            vocabulary=self.vocabulary,
            centroids=fitted,
            storage=storage,
            per_article=per_article,
        )
        extended.row_of = row_of  # cached_property: seeded with the index made above
        return extended

    def _per_article_storage(
        self, total: int, categories: int, new_ids: NDArray[np.str_], *, appending: bool
    ) -> Storage:
        """The per-article arrays that an extension to ``total`` rows and ``categories``
        columns writes: this model's, when it only appends rows of fitted categories and they
        fit past its end (its own rows then stay as they are); else a copy, with room."""
        own = self.per_article
        if (
            own is not None
            and appending
            # Columns of categories new since the fit change in every row at each extension.
            and categories == self.fitted_centroids.shape[0]
            and np.can_cast(new_ids.dtype, own["ids"].dtype)  # a longer id needs wider ids
            and own.claim(self.size, total - self.size)
        ):
            return own
        n, known = self.size, len(self.slugs)
        capacity = capacity_for(total)
        ids = np.zeros(capacity, dtype=np.result_type(self.ids.dtype, new_ids.dtype))
        published = np.zeros(capacity, dtype=self.published.dtype)
        members = np.zeros((capacity, categories), dtype=np.bool_)
        sims = np.zeros((capacity, categories), dtype=self.sims.dtype)
        ids[:n], published[:n] = self.ids, self.published
        members[:n, :known], sims[:n, :known] = self.members, self.sims
        arrays = {"ids": ids, "published": published, "members": members, "sims": sims}
        return Storage(arrays, used=total)

    def to_arrays(self, *, derived: bool = False) -> dict[str, NDArray[Any]]:
        """The model as named plain arrays: the artifact's content. With ``derived``, also what
        a load would otherwise compute again (the fitted centroids, the ids' hash table), for
        a copy kept on disk."""
        arrays: dict[str, NDArray[Any]] = {
            "format": np.array(ARTIFACT_FORMAT),
            "ids": self.ids,
            "published": self.published,
            "slugs": np.array(self.slugs, dtype=np.str_),
            "members": self.members,
            "sims": self.sims,
            "gram": self.gram,
            "vectors_data": self.vectors.data,
            "vectors_indices": self.vectors.indices,
            "vectors_indptr": self.vectors.indptr,
            "vectors_shape": np.array(self.vectors.shape),
            "terms": self.vocabulary.terms,
            "idf": self.vocabulary.idf,
        }
        if derived:
            centroids = self.fitted_centroids
            arrays |= {
                "centroids_data": centroids.data,
                "centroids_indices": centroids.indices,
                "centroids_indptr": centroids.indptr,
                "centroids_shape": np.array(centroids.shape),
                "row_table": build_table(self.ids) if self.row_table is None else self.row_table,
            }
        return arrays

    @staticmethod
    def from_arrays(
        data: Mapping[str, NDArray[Any]],
        storage: Storage | None = None,
        per_article: Storage | None = None,
    ) -> CorpusModel:
        """The model ``to_arrays`` gave, around the same arrays (no copy: they may be a
        read-only memory map). ``storage``: the vectors' entries with room to append, holding
        the same values as ``vectors_data`` and ``vectors_indices``; ``per_article``: the
        PER_ARTICLE arrays with room to append rows, likewise (feed/model/shared.py)."""
        found = int(data["format"]) if "format" in data else None
        if found != ARTIFACT_FORMAT:
            raise ValueError(f"model artifact format {found} does not match {ARTIFACT_FORMAT}")
        centroids = _csr(data, "centroids") if "centroids_data" in data else None
        return CorpusModel(
            ids=data["ids"],
            published=data["published"],
            slugs=data["slugs"].tolist(),
            members=data["members"],
            sims=data["sims"],
            gram=data["gram"],
            vectors=_csr(data, "vectors"),
            vocabulary=Vocabulary(data["terms"], data["idf"]),
            centroids=centroids,
            storage=storage,
            row_table=data.get("row_table"),
            per_article=per_article,
        )

    def to_bytes(self) -> bytes:
        """Plain numpy arrays (no pickle): safe to load, and independent of library versions."""
        buffer = io.BytesIO()
        arrays: dict[str, Any] = self.to_arrays()  # savez's stubs type its keywords as bool
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    @staticmethod
    def from_bytes(blob: bytes) -> CorpusModel:
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            return CorpusModel.from_arrays({name: data[name] for name in data.files})


def _read_only(array: NDArray[Any]) -> NDArray[Any]:
    array.flags.writeable = False
    return array


def _csr(data: Mapping[str, NDArray[Any]], name: str) -> sparse.csr_matrix:
    """The CSR matrix stored as ``name``'s data, indices, indptr and shape arrays, around
    those arrays themselves."""
    return sparse.csr_matrix(
        (data[f"{name}_data"], data[f"{name}_indices"], data[f"{name}_indptr"]),
        shape=tuple(int(x) for x in data[f"{name}_shape"]),
        copy=False,
    )


def _centroids(vectors: sparse.csr_matrix, members: NDArray[np.bool_]) -> sparse.csr_matrix:
    """Each category's centroid: the mean of its articles' rows, L2-normalised (a fit's)."""
    k, terms = members.shape[1], vectors.shape[1]
    if k == 0 or terms == 0:
        return sparse.csr_matrix((k, terms), dtype=np.float32)
    # The mean and the sum point the same way: normalising the sum is enough.
    sums = sparse.csr_matrix(members.T, dtype=np.float32) @ vectors
    return sparse.csr_matrix(normalize(sums), dtype=np.float32)


def fit(docs: Sequence[Doc]) -> CorpusModel:
    slugs = sorted({slug for doc in docs for slug in doc.categories})
    n, k = len(docs), len(slugs)
    members = np.zeros((n, k), dtype=np.bool_)
    column = {slug: j for j, slug in enumerate(slugs)}
    for i, doc in enumerate(docs):
        for slug in doc.categories:
            members[i, column[slug]] = True
    ids = np.array([d.id for d in docs], dtype=np.str_)
    published = np.array([d.published for d in docs], dtype=np.float64)
    if n == 0:
        return CorpusModel(
            ids,
            published,
            slugs,
            members,
            np.zeros((0, 0), np.float32),
            np.zeros((0, 0)),
            sparse.csr_matrix((0, 0), dtype=np.float32),
        )

    vectorizer = make_vectorizer(n)
    try:
        matrix = vectorizer.fit_transform([d.text for d in docs])
    except ValueError:  # every document is empty or stop words only
        return CorpusModel(
            ids,
            published,
            slugs,
            members,
            np.zeros((n, k), np.float32),
            np.eye(k),
            sparse.csr_matrix((n, 0), dtype=np.float32),
        )
    # Category centroids: the mean of member vectors, normalised so categories weigh equally.
    membership = members.astype(np.float32)
    counts = np.maximum(membership.sum(axis=0), 1.0)
    centroids = np.asarray((matrix.T @ membership).T) / counts[:, None]
    centroids = normalize(centroids)
    sims = np.asarray(matrix @ centroids.T, dtype=np.float32)
    gram = centroids @ centroids.T
    return CorpusModel(
        ids,
        published,
        slugs,
        members,
        sims,
        gram.astype(np.float64),
        sparse.csr_matrix(matrix),
        Vocabulary.of(vectorizer),
        sparse.csr_matrix(centroids, dtype=np.float32),
    )
