"""Every figure the evaluation reports, for any scorer's probabilities.

The same functions score leadscore, its peers and the champion, so a comparison is never skewed by
two implementations of one metric. Inputs are 0/1 labels and probabilities of conversion. The
evaluation counts every lead once (a soft negative is a non-conversion, which is what a probability
promises); optional sample weights enter the probability metrics only, while the ranking figures
(capture, lift, tier table) always count leads, because sales capacity is counted in leads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

# Probabilities are clipped this far from 0 and 1 for log loss, so one confident miss costs a
# large but finite amount instead of making the whole comparison infinite.
LOG_LOSS_EPSILON = 1e-15


def _as_arrays(
    y: Sequence[float] | pd.Series | np.ndarray,
    p: Sequence[float] | pd.Series | np.ndarray,
    weights: Sequence[float] | pd.Series | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, probabilities and weights as float arrays, refusing what no metric can use."""
    y_arr = np.asarray(y, dtype="float64").ravel()
    p_arr = np.asarray(p, dtype="float64").ravel()
    if len(y_arr) != len(p_arr):
        raise ValueError(f"labels and probabilities differ in length: {len(y_arr)} vs {len(p_arr)}")
    bad_label = ~np.isin(y_arr, (0.0, 1.0))
    if bad_label.any():
        row = int(np.flatnonzero(bad_label)[0])
        raise ValueError(f"labels must be 0 or 1; row {row} is {y_arr[row]!r}")
    bad_p = ~((p_arr >= 0.0) & (p_arr <= 1.0))  # also catches NaN
    if bad_p.any():
        row = int(np.flatnonzero(bad_p)[0])
        raise ValueError(f"probabilities must lie in [0, 1]; row {row} is {p_arr[row]!r}")
    if weights is None:
        w_arr = np.ones_like(y_arr)
    else:
        w_arr = np.asarray(weights, dtype="float64").ravel()
        if len(w_arr) != len(y_arr):
            raise ValueError(f"weights and labels differ in length: {len(w_arr)} vs {len(y_arr)}")
        bad_w = ~(w_arr >= 0.0)
        if bad_w.any():
            row = int(np.flatnonzero(bad_w)[0])
            raise ValueError(f"weights must be non-negative numbers; row {row} is {w_arr[row]!r}")
    return y_arr, p_arr, w_arr


def log_loss(
    y: Sequence[float] | pd.Series | np.ndarray,
    p: Sequence[float] | pd.Series | np.ndarray,
    weights: Sequence[float] | pd.Series | np.ndarray | None = None,
) -> float:
    """Weighted mean negative log-likelihood, p clipped to [1e-15, 1 - 1e-15]; NaN for no rows."""
    y_arr, p_arr, w_arr = _as_arrays(y, p, weights)
    if w_arr.sum() == 0:
        return float("nan")
    p_clipped = np.clip(p_arr, LOG_LOSS_EPSILON, 1 - LOG_LOSS_EPSILON)
    row_loss = -(y_arr * np.log(p_clipped) + (1 - y_arr) * np.log1p(-p_clipped))
    return float(np.average(row_loss, weights=w_arr))


def calibration_bins(
    y: Sequence[float] | pd.Series | np.ndarray,
    p: Sequence[float] | pd.Series | np.ndarray,
    bins: int = 10,
    weights: Sequence[float] | pd.Series | np.ndarray | None = None,
) -> pd.DataFrame:
    """Equal-count bins of predicted probability with their observed conversion rate.

    Rows are sorted by p and cut into `bins` groups of equal weight; rows sharing one p value stay in
    one bin (an isotonic calibrator or a points score produces large ties, and splitting a tie by row
    order would compare one half of identical predictions with the other). Bins can therefore be
    uneven, or fewer than asked, when p has large ties. Equal-count bins, unlike equal-width ones,
    never leave most leads in one bin when probabilities cluster near the base rate.

    Returns:
        One row per non-empty bin: ``mean_p``, ``observed`` (weighted conversion rate), ``weight``
        (sum of weights) and ``rows``.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    y_arr, p_arr, w_arr = _as_arrays(y, p, weights)
    columns = ["mean_p", "observed", "weight", "rows"]
    total = w_arr.sum()
    if len(y_arr) == 0 or total == 0:
        return pd.DataFrame(columns=columns, dtype="float64")
    order = np.argsort(p_arr, kind="mergesort")
    p_sorted, y_sorted, w_sorted = p_arr[order], y_arr[order], w_arr[order]
    weight_before = np.cumsum(w_sorted) - w_sorted
    # Each tie group starts where its first row starts; all its rows take that row's bin.
    _, first_of_value, value_id = np.unique(p_sorted, return_index=True, return_inverse=True)
    start_share = weight_before[first_of_value][value_id] / total
    bin_id = np.minimum((start_share * bins).astype(int), bins - 1)
    frame = pd.DataFrame({"bin": bin_id, "wp": w_sorted * p_sorted, "wy": w_sorted * y_sorted, "w": w_sorted})
    grouped = frame.groupby("bin", sort=True)
    sums = grouped[["wp", "wy", "w"]].sum()
    sums = sums[sums["w"] > 0]
    return pd.DataFrame(
        {
            "mean_p": sums["wp"] / sums["w"],
            "observed": sums["wy"] / sums["w"],
            "weight": sums["w"],
            "rows": grouped.size().loc[sums.index].astype("float64"),
        }
    ).reset_index(drop=True)


def wilson_interval(successes, trials, z: float = 1.959964) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score interval (95% at the default z) of the rate successes / trials, NaN where trials is 0.

    Wilson rather than rate +/- z standard errors: it stays inside 0-100% and is honest for small counts and rates
    near 0 or 1 (19 of 20 reads 76-99%, not 85-105%)."""
    k, n = np.asarray(successes, dtype="float64"), np.asarray(trials, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = k / n
        centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * np.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def expected_calibration_error(
    y: Sequence[float] | pd.Series | np.ndarray,
    p: Sequence[float] | pd.Series | np.ndarray,
    bins: int = 10,
    weights: Sequence[float] | pd.Series | np.ndarray | None = None,
) -> float:
    """Weighted mean gap between predicted and observed conversion rate over equal-count bins.

    ECE = sum over bins of (bin weight / total weight) * |observed rate - mean p|, with the bins of
    `calibration_bins` (equal count, ties kept together). A rep reading "30 %" should see about 30 %
    of such leads convert; this is the average distance from that promise. NaN for no rows.
    """
    table = calibration_bins(y, p, bins=bins, weights=weights)
    if table.empty:
        return float("nan")
    share = table["weight"] / table["weight"].sum()
    return float((share * (table["observed"] - table["mean_p"]).abs()).sum())


def _check_fraction(fraction: float) -> None:
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")


def _conversions_in_top(y: np.ndarray, p: np.ndarray, fraction: float) -> float:
    """Expected conversions among the top `fraction` of rows by p, ties at the cut shared pro rata.

    Leads tied with the last lead taken are credited with their tie group's conversion rate for the
    share of the group that fits (the expected value under random tie-breaking), so a coarse score
    such as a points total is neither favoured nor penalised by the order rows happen to arrive in.
    """
    taken = fraction * len(y)
    cutoff = np.sort(p)[::-1][int(np.ceil(taken)) - 1]
    above = p > cutoff
    tied = p == cutoff
    return float(y[above].sum() + (taken - above.sum()) * y[tied].mean())


def capture_at(
    y: Sequence[float] | pd.Series | np.ndarray, p: Sequence[float] | pd.Series | np.ndarray, fraction: float
) -> float:
    """Share of all conversions found in the top `fraction` of leads by p (cumulative gain).

    "Calling the best 10 % of leads reaches 45 % of the deals." NaN when there are no rows or no
    conversions. Ties at the cut-off are shared pro rata (see `_conversions_in_top`).
    """
    _check_fraction(fraction)
    y_arr, p_arr, _ = _as_arrays(y, p)
    positives = y_arr.sum()
    if len(y_arr) == 0 or positives == 0:
        return float("nan")
    return float(_conversions_in_top(y_arr, p_arr, fraction) / positives)


def lift_at(
    y: Sequence[float] | pd.Series | np.ndarray, p: Sequence[float] | pd.Series | np.ndarray, fraction: float
) -> float:
    """Conversion rate in the top `fraction` of leads by p divided by the overall conversion rate.

    Equals capture / fraction, because the top holds exactly `fraction` of the leads (ties shared pro
    rata). 1.0 is a random list; NaN when there are no rows or no conversions.
    """
    return capture_at(y, p, fraction) / fraction


def tier_table(
    y: Sequence[float] | pd.Series | np.ndarray, tiers: Sequence[str], order: Sequence[str]
) -> pd.DataFrame:
    """Per tier, best first: how many leads it holds and how many of them converted.

    Every tier in `order` gets a row, also when empty (conversion rate NaN), so tables from two
    models line up. A tier label outside `order` is an error: it means thresholds and names drifted.

    Returns:
        Indexed by tier name: ``leads``, ``share`` (of all leads), ``conversions``, ``conversion_rate``.
    """
    y_arr = np.asarray(y, dtype="float64").ravel()
    labels = pd.Series(np.asarray(tiers, dtype=object).ravel(), dtype=object)
    if len(labels) != len(y_arr):
        raise ValueError(f"labels and tiers differ in length: {len(y_arr)} vs {len(labels)}")
    if labels.isna().any():
        raise ValueError(f"row {int(np.flatnonzero(labels.isna())[0])} has no tier")
    unknown = sorted(set(labels) - set(order), key=str)
    if unknown:
        raise ValueError(f"tiers {unknown} are not among the configured tiers {list(order)}")
    frame = pd.DataFrame({"tier": labels, "converted": y_arr})
    grouped = frame.groupby("tier")["converted"]
    leads = grouped.size().reindex(order, fill_value=0).astype("int64")
    conversions = grouped.sum().reindex(order, fill_value=0.0)
    table = pd.DataFrame(
        {
            "leads": leads,
            "share": leads / len(y_arr) if len(y_arr) else np.nan,
            "conversions": conversions,
            "conversion_rate": conversions / leads.where(leads > 0),
        }
    )
    table.index.name = "tier"
    return table


def fraction_key(fraction: float) -> str:
    """``0.1`` -> ``"top10"``: the metric-name suffix for a top fraction, in percent."""
    return f"top{round(fraction * 100, 4):g}"


def evaluate_scores(
    y: Sequence[float] | pd.Series | np.ndarray,
    p: Sequence[float] | pd.Series | np.ndarray,
    *,
    ece_bins: int,
    top_fractions: Sequence[float],
    weights: Sequence[float] | pd.Series | np.ndarray | None = None,
) -> dict[str, float]:
    """All headline metrics for one scorer on one set of rows.

    Keys: ``rows``, ``positives``, ``positive_rate``, ``mean_p``, ``roc_auc``, ``pr_auc`` (average
    precision), ``log_loss``, ``brier``, ``ece``, and per top fraction ``capture_topNN`` and
    ``lift_topNN`` (NN in percent, e.g. ``lift_top10``). Weighted metrics use `weights`; capture and
    lift count leads. Undefined figures are NaN rather than errors: AUCs when only one class is
    present, everything but ``rows`` when there are no rows.
    """
    for fraction in top_fractions:
        _check_fraction(fraction)
    y_arr, p_arr, w_arr = _as_arrays(y, p, weights)
    total = w_arr.sum()
    nan = float("nan")
    metrics: dict[str, float] = {"rows": float(len(y_arr)), "positives": float(y_arr.sum())}
    if total == 0:
        names = ["positive_rate", "mean_p", "roc_auc", "pr_auc", "log_loss", "brier", "ece"]
        names += [f"{kind}_{fraction_key(f)}" for f in top_fractions for kind in ("capture", "lift")]
        return metrics | dict.fromkeys(names, nan)

    both_classes = 0 < y_arr.sum() < len(y_arr)
    metrics |= {
        "positive_rate": float(np.average(y_arr, weights=w_arr)),
        "mean_p": float(np.average(p_arr, weights=w_arr)),
        "roc_auc": float(roc_auc_score(y_arr, p_arr, sample_weight=w_arr)) if both_classes else nan,
        "pr_auc": float(average_precision_score(y_arr, p_arr, sample_weight=w_arr)) if both_classes else nan,
        "log_loss": log_loss(y_arr, p_arr, weights=w_arr),
        "brier": float(np.average((p_arr - y_arr) ** 2, weights=w_arr)),
        "ece": expected_calibration_error(y_arr, p_arr, bins=ece_bins, weights=w_arr),
    }
    for fraction in top_fractions:
        key = fraction_key(fraction)
        metrics[f"capture_{key}"] = capture_at(y_arr, p_arr, fraction)
        metrics[f"lift_{key}"] = lift_at(y_arr, p_arr, fraction)
    return metrics
