"""Probability calibration on a held-out split, and the fixed 1-99 score and tiers.

A CRM writes back the score and tier; both must mean the same thing next quarter. The calibrator maps
the model's raw margin to a probability learned on rows the model never saw, the score is that
probability in percent, and tier thresholds are probabilities frozen at training time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from pipelines.config import TierParams

_EPS = 1e-4


@dataclass
class Calibrator:
    """Monotone map from raw margin to probability (isotonic or sigmoid/Platt)."""

    method: str
    _fitted: object = None

    def fit(self, margin: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> "Calibrator":
        if self.method == "isotonic":
            model = IsotonicRegression(y_min=_EPS, y_max=1 - _EPS, out_of_bounds="clip")
            model.fit(margin, y, sample_weight=weights)
        else:
            model = LogisticRegression(C=1e6)
            model.fit(margin.reshape(-1, 1), y, sample_weight=weights)
        self._fitted = model
        return self

    def predict(self, margin: np.ndarray) -> np.ndarray:
        margin = np.asarray(margin, dtype=np.float64)
        if len(margin) == 0:
            return margin
        if self.method == "isotonic":
            p = self._fitted.predict(margin)
        else:
            p = self._fitted.predict_proba(margin.reshape(-1, 1))[:, 1]
        return np.clip(p, _EPS, 1 - _EPS)


def to_score(probability: np.ndarray) -> np.ndarray:
    """The 1-99 score a CRM shows: the calibrated probability in percent, so 40 means ~40% convert."""
    return np.clip(np.rint(np.asarray(probability) * 100), 1, 99).astype(np.int64)


@dataclass
class TierThresholds:
    """Tier names best first, each with the minimum calibrated probability to enter it."""

    names: list[str]
    min_probability: list[float] = field(default_factory=list)  # one per name; the last is 0

    @classmethod
    def fit(cls, params: TierParams, reference_probability: np.ndarray) -> "TierThresholds":
        """Freeze thresholds: capacity tiers take quantiles of the reference population's p.

        TierParams keeps the thresholds from increasing down the list (a tier out of order is refused).
        """
        names = [t.name for t in params.tiers]
        cuts = []
        for tier in params.tiers[:-1]:
            if params.method == "capacity":
                cuts.append(float(np.quantile(reference_probability, 1 - tier.top_share)))
            else:
                cuts.append(float(tier.min_probability))
        return cls(names=names, min_probability=[*cuts, 0.0])

    def assign(self, probability: np.ndarray) -> np.ndarray:
        """Tier name per probability (best tier whose threshold it reaches)."""
        cuts = np.asarray(self.min_probability[:-1])[::-1]  # ascending
        idx = len(cuts) - np.searchsorted(cuts, np.asarray(probability), side="right")
        return np.asarray(self.names, dtype=object)[idx]

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.names, self.min_probability))
