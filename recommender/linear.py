"""The learned ranker's fitted model as plain numbers: a portable JSON artifact, no pickle.

A logistic regression on standardized features is its coefficients, the scaler's means and
scales and an intercept: loading one needs neither scikit-learn nor trust in whoever wrote it
(``json.loads`` runs no code), and a scikit-learn upgrade changes nothing about reading the
artifacts already published. The version that fitted it is kept in ``meta`` for the record.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

# Bumped when the meaning of the numbers below changes; an older artifact is then ignored
# (the learned ranker falls back to tfidf) until the next training publishes a new one.
ARTIFACT_FORMAT = 1
KIND = "logistic_regression"


@dataclass(frozen=True)
class LinearModel:
    """``logit = intercept + Σ coef_j × (x_j − mean_j) / scale_j`` over ``features``."""

    features: tuple[str, ...]
    coef: tuple[float, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    intercept: float
    # Events used, positives, validation and baseline AUC, the scikit-learn version, ...
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        n = len(self.features)
        if not (len(self.coef) == len(self.mean) == len(self.scale) == n):
            raise ValueError("a linear model needs one coefficient, mean and scale per feature")
        numbers = (*self.coef, *self.mean, *self.scale, self.intercept)
        if not all(math.isfinite(x) for x in numbers) or any(s <= 0 for s in self.scale):
            raise ValueError("a linear model's numbers must be finite, its scales positive")

    def slopes(self, names: Sequence[str]) -> tuple[NDArray[np.float64], float]:
        """Per-raw-feature slopes ``coef / scale`` in the order of ``names`` (0 for features
        the model lacks), and the offset, so that ``logit = x @ slopes + offset``."""
        slope = np.zeros(len(names))
        offset = self.intercept
        index = {name: j for j, name in enumerate(names)}
        for name, c, m, s in zip(self.features, self.coef, self.mean, self.scale, strict=True):
            if name in index:
                slope[index[name]] = c / s
            offset -= c * m / s
        return slope, offset

    def weights(self) -> dict[str, float]:
        """Each feature's coefficient on the standardized scale: comparable with each other."""
        return {name: round(c, 6) for name, c in zip(self.features, self.coef, strict=True)}

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": ARTIFACT_FORMAT,
                "kind": KIND,
                "features": list(self.features),
                "coef": list(self.coef),
                "mean": list(self.mean),
                "scale": list(self.scale),
                "intercept": self.intercept,
                "meta": dict(self.meta),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> LinearModel:
        """ValueError when it is not an artifact of this format."""
        try:
            data = json.loads(text)
            if data.get("format") != ARTIFACT_FORMAT or data.get("kind") != KIND:
                raise ValueError(
                    f"artifact format {data.get('format')!r}/{data.get('kind')!r} is not "
                    f"{ARTIFACT_FORMAT}/{KIND}"
                )
            return cls(
                tuple(str(name) for name in data["features"]),
                tuple(float(x) for x in data["coef"]),
                tuple(float(x) for x in data["mean"]),
                tuple(float(x) for x in data["scale"]),
                float(data["intercept"]),
                dict(data.get("meta") or {}),
            )
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a linear model artifact: {exc}") from None
