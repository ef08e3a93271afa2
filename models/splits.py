"""One split definition shared by training, evaluation and the peers.

Four parts, so no figure is measured on rows that shaped it: *train* fits the model, *validation*
drives early stopping and tuning, *calibration* fits the probability calibrator, *test* is touched
only by the final evaluation. With creation dates the parts follow time (oldest to newest), because a
lead-scoring model is always used on leads newer than the ones it learned from; an out-of-time test
is the honest estimate of next quarter. Without dates it falls back to a seeded stratified hold-out,
and so does a dated export whose creation days cannot order the parts (see `_why_not_out_of_time`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from pipelines.config import SplitParams

PART_NAMES = ("train", "validation", "calibration", "test")


@dataclass
class Split:
    """Positional row indices (into the frame the split was made from) of each part."""

    train: np.ndarray
    validation: np.ndarray
    calibration: np.ndarray
    test: np.ndarray
    kind: Literal["out_of_time", "stratified"]
    positives: dict[str, int] = field(default_factory=dict)
    date_ranges: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = field(default_factory=dict)
    # Why a dated export was split at random: its creation days cannot order the parts ('' otherwise).
    stratified_because: str = ""

    @property
    def kind_description(self) -> str:
        """The kind as people read it (console, model card), with why dates were not used."""
        return f"{self.kind} ({self.stratified_because})" if self.stratified_because else self.kind

    def test_caption(self) -> str:
        """What the test rows are, as a plot's title says it: "test leads (n=1,843, created 2025-07-01 → 2025-12-31)",
        or for a stratified split "test leads, seeded random hold-out (n=1,843)" (with their creation dates when
        dated). A PNG shown alone must say what its curves were computed on."""
        return self._caption("test leads" if self.kind == "out_of_time" else "test leads, seeded random hold-out", ("test",))

    def training_caption(self, pooled: bool) -> str:
        """What the rows a model was fit on are, as its feature-importance plot's title says it, by `test_caption`'s
        rule: "training leads (n=5,512, created 2025-01-01 → 2025-05-31)", a stratified split's "training leads,
        seeded random share (n=…)"; `pooled` (the models cross-validate, `models.train.cross_validates`, and are refit
        on the train, validation and calibration rows together) "training leads, all but the seeded random test
        hold-out (n=…)", or when dated "training leads, all older than the test leads (n=…, created …)"."""
        if pooled:
            return self._caption("training leads, all older than the test leads" if self.kind == "out_of_time"
                                 else "training leads, all but the seeded random test hold-out", PART_NAMES[:3])
        return self._caption("training leads" if self.kind == "out_of_time" else "training leads, seeded random share",
                             ("train",))

    def _caption(self, text: str, parts: tuple[str, ...]) -> str:
        """`text`, then the number of rows of `parts` and the creation dates they span when dated."""
        text += f" (n={sum(len(getattr(self, name)) for name in parts):,}"
        spans = [self.date_ranges[name] for name in parts if name in self.date_ranges]
        if spans:
            text += f", created {min(first for first, _ in spans):%Y-%m-%d} → {max(last for _, last in spans):%Y-%m-%d}"
        return text + ")"

    def tags(self) -> dict[str, str]:
        """MLflow run tags: `split` is the kind alone (filterable), `split_because` why dates were not used."""
        return {"split": self.kind} | ({"split_because": self.stratified_because} if self.stratified_because else {})

    def parts(self) -> dict[str, np.ndarray]:
        """Part name -> row indices, oldest part first."""
        return {name: getattr(self, name) for name in PART_NAMES}

    def describe(self) -> dict[str, str | int]:
        """Flat summary for logs and MLflow params: kind (and why, if stratified despite dates), rows and
        positives per part, date ranges."""
        summary: dict[str, str | int] = {"kind": self.kind}
        if self.stratified_because:
            summary["stratified_because"] = self.stratified_because
        for name, rows in self.parts().items():
            summary[f"{name}_rows"] = len(rows)
            if name in self.positives:
                summary[f"{name}_positives"] = self.positives[name]
            if name in self.date_ranges:
                first, last = self.date_ranges[name]
                summary[f"{name}_from"] = first.isoformat()
                summary[f"{name}_to"] = last.isoformat()
        return summary


def _part_sizes(n_rows: int, split: SplitParams) -> dict[str, int]:
    """Rows per part; train takes what the three held-out fractions leave."""
    held_out = {
        "validation": round(n_rows * split.validation),
        "calibration": round(n_rows * split.calibration),
        "test": round(n_rows * split.test),
    }
    return {"train": n_rows - sum(held_out.values()), **held_out}


def _creation_dates(created_at: pd.Series) -> pd.Series:
    """created_at as datetimes with a positional index; every row must have one."""
    dates = pd.to_datetime(created_at.reset_index(drop=True), errors="coerce")
    if dates.isna().any():
        bad = np.flatnonzero(dates.isna().to_numpy())
        raise ValueError(
            f"created_at is missing or not a date in {len(bad)} row(s), first at position {int(bad[0])} "
            f"(value {created_at.iloc[int(bad[0])]!r}); an out-of-time split needs every date"
        )
    return dates


def _out_of_time(dates: pd.Series, split: SplitParams) -> dict[str, np.ndarray]:
    """Oldest rows first; leads created at the same instant keep their input order (stable sort)."""
    order = np.argsort(dates.to_numpy(), kind="mergesort")
    bounds = np.cumsum([0, *_part_sizes(len(dates), split).values()])
    return {name: np.sort(order[bounds[i] : bounds[i + 1]]) for i, name in enumerate(PART_NAMES)}


def _why_not_out_of_time(dates: pd.Series, parts: dict[str, np.ndarray]) -> str:
    """Why creation days cannot order the out-of-time parts, or '' when they do.

    The rule: the test part must begin on a later calendar day than the train part ends. Adjacent
    parts may share the day a cut falls on (validation and calibration lie between train and test),
    but a test drawn from the training days would only be newer by file order, not by time.
    """
    days = dates.dt.normalize()
    if not len(parts["train"]) or not len(parts["test"]):
        return ""  # too few rows for any split: make_split says so
    shared = days.iloc[parts["test"]].min()
    if shared > days.iloc[parts["train"]].max():
        return ""
    first, last = days.min(), days.max()
    if first == last:
        return f"all leads created on {first:%Y-%m-%d}: dates cannot order train/validation/test"
    return (f"leads created on {days.nunique():,} days, {first:%Y-%m-%d} .. {last:%Y-%m-%d}, and the training and "
            f"test parts would share {shared:%Y-%m-%d}: dates cannot order train/validation/test")


def _stratified(labels: np.ndarray, split: SplitParams, seed: int) -> dict[str, list[np.ndarray]]:
    """Each class shuffled with the seed and cut by the same fractions, keeping the positive rate."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in PART_NAMES}
    for label in (0.0, 1.0):
        rows = rng.permutation(np.flatnonzero(labels == label))
        bounds = np.cumsum([0, *_part_sizes(len(rows), split).values()])
        for i, name in enumerate(PART_NAMES):
            parts[name].append(rows[bounds[i] : bounds[i + 1]])
    return parts


def _refuse_a_missing_class(labels: np.ndarray) -> None:
    """Refuse rows that lack a class altogether, saying so: the per-part error blamed the split fractions ("the train
    part (0 of 0 rows) has no converted lead; ... change the evaluate.split fractions"), which no fraction fixes."""
    rules = "(`leadscore features` counts the leads per label rule)"
    if not len(labels):
        raise ValueError(f"no labelled lead to train or evaluate on: the label rules left every lead out {rules}")
    converted = int(labels.sum())
    if not converted:
        raise ValueError(f"none of the {len(labels):,} labelled leads converted, and a model needs converted and "
                         "non-converted leads: check that label.converted_statuses (through data.value_maps.status) "
                         f"names the status the export gives a won lead {rules}")
    if converted == len(labels):
        raise ValueError(f"all {len(labels):,} labelled leads converted, and a model needs converted and non-converted "
                         "leads: check that label.rejected_statuses (through data.value_maps.status) names the status "
                         f"the export gives a lost lead {rules}")


def make_split(created_at: pd.Series | None, y: pd.Series, split: SplitParams, seed: int) -> Split:
    """Split rows into train / validation / calibration / test.

    Args:
        created_at: lead creation time per row, or None for an undated export. When given, the
            oldest rows train and the newest are the test, so every train date <= every test date;
            when the creation days cannot order the parts (`_why_not_out_of_time`), the split is stratified
            and `Split.stratified_because` says why.
        y: the 0/1 label per row, aligned with `created_at` by position.
        split: held-out fractions (evaluate.split); train gets the rest.
        seed: used only by the stratified fallback (same seed, same split).

    Raises:
        ValueError: labels not 0/1, lengths differ, a date missing, or a part without a converted or
            without a non-converted lead (no metric, early stopping or calibration is possible then).
    """
    labels = np.asarray(y, dtype="float64").ravel()
    bad = ~np.isin(labels, (0.0, 1.0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"labels must be 0 or 1; position {row} is {labels[row]!r}")
    _refuse_a_missing_class(labels)
    dates = None
    kind: Literal["out_of_time", "stratified"]
    stratified_because = ""
    if created_at is not None:
        if len(created_at) != len(labels):
            raise ValueError(f"created_at and labels differ in length: {len(created_at)} vs {len(labels)}")
        dates = _creation_dates(created_at)
        parts = _out_of_time(dates, split)
        kind = "out_of_time"
        stratified_because = _why_not_out_of_time(dates, parts)
    if created_at is None or stratified_because:
        parts = {name: np.sort(np.concatenate(chunks)) for name, chunks in _stratified(labels, split, seed).items()}
        kind = "stratified"

    positives = {name: int(labels[rows].sum()) for name, rows in parts.items()}
    for name, rows in parts.items():
        for count, missing_class in ((positives[name], "converted"), (len(rows) - positives[name], "non-converted")):
            if count == 0:
                raise ValueError(
                    f"the {name} part ({len(rows)} of {len(labels)} rows, {kind} split) has no {missing_class} "
                    "lead, and every part needs both classes; provide more labelled leads or change the "
                    "evaluate.split fractions"
                )

    date_ranges = {}
    if dates is not None:
        date_ranges = {name: (dates.iloc[rows].min(), dates.iloc[rows].max()) for name, rows in parts.items()}
    return Split(**parts, kind=kind, positives=positives, date_ranges=date_ranges, stratified_because=stratified_because)


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded stratified K-fold over positions 0..n-1: (fit rows, held-out rows) per fold.

    Every row is held out exactly once, each fold keeps the positive rate. Used for tuning and
    out-of-fold calibration inside the rows a model may learn from (never the test rows).
    """
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels, dtype="float64").ravel()
    smallest = int(min(labels.sum(), len(labels) - labels.sum()))
    if folds < 2 or smallest < folds:
        raise ValueError(
            f"{folds}-fold cross-validation needs at least {max(folds, 2)} converted and non-converted leads; "
            f"the fitting rows have {smallest} of the rarer class"
        )
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return [(np.sort(a), np.sort(b)) for a, b in splitter.split(np.zeros(len(labels)), labels)]
