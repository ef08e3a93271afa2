"""Category levels learned at fit time, applied identically at train, batch and serve time.

LightGBM needs pandas categoricals with the *same* category list at predict time as at fit time.
The levels live here (and so in the saved artifact); values never seen in training, or too rare to
learn from, become one shared ``__other__`` level instead of crashing or silently shifting codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

OTHER = "__other__"


@dataclass
class CategoryEncoder:
    """Fixed category levels per categorical feature."""

    categorical: list[str]
    numeric: list[str]
    min_count: int = 10
    levels: dict[str, list[str]] = field(default_factory=dict)

    def fit(self, frame: pd.DataFrame) -> "CategoryEncoder":
        """Keep levels seen at least ``min_count`` times; the rest share ``__other__``."""
        self.__dict__.pop("_lookup", None)  # a refit must not transform with the old levels
        self.levels = {}
        for col in self.categorical:
            counts = frame[col].dropna().astype(str).value_counts()
            kept = sorted(counts.index[counts >= self.min_count])
            self.levels[col] = [*kept, OTHER]
        return self

    @property
    def columns(self) -> list[str]:
        return [*self.categorical, *self.numeric]

    @cached_property
    def _lookup(self) -> dict[str, tuple[pd.Index, pd.CategoricalDtype]]:
        """Per categorical: the kept levels as an Index and the fixed dtype (built once, not per call)."""
        return {col: (pd.Index(levels[:-1]), pd.CategoricalDtype(levels)) for col, levels in self.levels.items()}

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Model-ready frame: categoricals with the fitted levels, numerics as float64."""
        out = {}
        for col in self.categorical:
            index, dtype = self._lookup[col]
            # Level codes are looked up once per distinct value, not per row (a few dozen vs millions).
            codes, distinct = pd.factorize(frame[col], use_na_sentinel=True)
            level = index.get_indexer(distinct)
            level[level < 0] = len(index)  # unseen or rare: __other__, the last level
            level = np.append(level, -1)  # missing (code -1 picks the last entry) stays missing
            out[col] = pd.Categorical.from_codes(level[codes], dtype=dtype)
        numeric = frame[self.numeric]
        if not (numeric.dtypes == np.float64).all():
            numeric = numeric.apply(pd.to_numeric, errors="coerce").astype(np.float64)
        return pd.concat([pd.DataFrame(out, index=frame.index), numeric], axis=1)[self.columns]
