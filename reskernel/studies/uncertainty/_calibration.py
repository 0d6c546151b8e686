"""Calibration of predicted variances: quantile bins of the predicted variance, the realized
squared error in each bin, and the statistics that say whether the two agree.

A predictor that states a variance v_i for the error of its mean at point i is calibrated when
E[e_i] = v_i, e_i being the realized squared error. Single points are too noisy to check that
(for a Gaussian error over k independent outputs, e_i / v_i ~ chi^2_k / k), so points are sorted
by v, split into bins of equal count (quantile bins), and each bin's mean error is compared with
its mean predicted variance, within the standard error of the bin's mean error (Lee et al. 2018,
Figure 2, bin the same way).
"""
from typing import NamedTuple

import numpy as np
import scipy.stats

__all__ = ["Calibration", "binned_calibration", "calibration_summary", "quantile_bins"]


class Calibration(NamedTuple):
    """Binned predicted variance against realized squared error; NumPy arrays, one entry per bin.

    Attributes:
      lower, upper: (bins,) the smallest and largest predicted variance in each bin.
      count: (bins,) points per bin (equal up to one).
      predicted: (bins,) mean predicted variance of the bin's points.
      realized: (bins,) mean realized squared error of the bin's points.
      stderr: (bins,) standard error of `realized`: sample standard deviation (ddof 1) over
        sqrt(count) (inf for a bin of one point).
      z: (bins,) (realized - predicted) / stderr.
    """

    lower: np.ndarray
    upper: np.ndarray
    count: np.ndarray
    predicted: np.ndarray
    realized: np.ndarray
    stderr: np.ndarray
    z: np.ndarray


def _check(predicted, realized):
    p = np.asarray(predicted, dtype=np.float64)
    r = np.asarray(realized, dtype=np.float64)
    if p.ndim != 1 or p.shape != r.shape:
        raise ValueError(f"predicted and realized must be 1-d arrays of one length, got shapes {p.shape} and {r.shape}")
    if not (np.isfinite(p).all() and np.isfinite(r).all()):
        raise ValueError("predicted and realized must be finite")
    if (r < 0).any():
        raise ValueError("realized squared errors must be >= 0")
    return p, r


def quantile_bins(predicted, bins: int) -> np.ndarray:
    """The bin (0 .. bins - 1) of every point: points sorted by predicted value (ties by index),
    then cut into `bins` runs of equal count (the first len % bins runs one longer), so bin b
    holds the b-th quantile slice whatever the ties."""
    p = np.asarray(predicted, dtype=np.float64)
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or not 1 <= bins <= p.size:
        raise ValueError(f"bins must be an int from 1 to the number of points ({p.size}), got {bins!r}")
    order = np.argsort(p, kind="stable")
    which = np.empty(p.size, dtype=np.int64)
    for b, idx in enumerate(np.array_split(order, bins)):
        which[idx] = b
    return which


def binned_calibration(predicted, realized, bins: int = 10) -> Calibration:
    """Mean realized squared error against mean predicted variance in quantile bins.

    Args:
      predicted: (m,) predicted variance of each point's error (>= 0 in any sane model).
      realized: (m,) realized squared error of each point (e.g. averaged over its k outputs:
        then its expectation is still the per-output variance).
      bins: number of quantile bins (1 .. m).
    Returns:
      Calibration, bins in ascending predicted variance.

    Example:
      >>> import numpy as np
      >>> v = np.repeat([1.0, 4.0], 4); e = np.array([0, 2, 1, 1, 3, 5, 4, 4.0])
      >>> c = binned_calibration(v, e, bins=2)
      >>> c.predicted.tolist(), c.realized.tolist(), c.count.tolist()
      ([1.0, 4.0], [1.0, 4.0], [4, 4])
    """
    p, r = _check(predicted, realized)
    which = quantile_bins(p, bins)
    rows = []
    for b in range(bins):
        pb, rb = p[which == b], r[which == b]
        se = rb.std(ddof=1) / np.sqrt(rb.size) if rb.size > 1 else np.inf
        rows.append((pb.min(), pb.max(), rb.size, pb.mean(), rb.mean(), se))
    lower, upper, count, pm, rm, se = (np.array(c) for c in zip(*rows))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (rm - pm) / se, np.where(rm == pm, 0.0, np.inf * np.sign(rm - pm)))
    return Calibration(lower, upper, count.astype(np.int64), pm, rm, se, z)


def calibration_summary(predicted, realized, bins: int = 10) -> dict:
    """Numbers that say whether predicted variances match realized squared errors.

    Returns a dict of floats:
      ratio: mean realized / mean predicted (1 when calibrated on average; the factor the
        amplitude would need).
      ratio_low, ratio_high: its 95% interval from the points' spread (delta method, points
        taken as independent).
      slope, intercept: least squares line of the bins' realized on their predicted means
        (1 and 0 when calibrated).
      log_slope: slope of log realized on log predicted over the bins (1 when the error is
        proportional to the predicted variance, whatever the scale).
      pearson, spearman: correlations of predicted and realized over the points (single points
        are noisy: even a calibrated predictor's are below 1).
      binned_pearson: correlation of the bins' means.
      within_1se, within_2se: fraction of bins whose |z| <= 1, 2 (about 0.68 and 0.95 when
        calibrated).
      chi2_dof: mean z^2 over the bins (about 1 when calibrated), and chi2_p its p-value.
      bins, points: the counts.
    """
    p, r = _check(predicted, realized)
    cal = binned_calibration(p, r, bins)
    m = p.size
    ratio = r.mean() / p.mean()
    # delta method for mean(r) / mean(p) over independent points
    resid = r - ratio * p
    se_ratio = resid.std(ddof=1) / np.sqrt(m) / p.mean() if m > 1 else np.inf
    multi = bins > 1 and np.ptp(cal.predicted) > 0
    slope, intercept = np.polyfit(cal.predicted, cal.realized, 1) if multi else (np.nan, np.nan)
    pos = (cal.predicted > 0) & (cal.realized > 0)
    log_slope = (np.polyfit(np.log(cal.predicted[pos]), np.log(cal.realized[pos]), 1)[0]
                 if multi and pos.sum() > 1 and np.ptp(cal.predicted[pos]) > 0 else np.nan)
    finite = np.isfinite(cal.z)
    z2 = cal.z[finite] ** 2
    return {
        "ratio": float(ratio), "ratio_low": float(ratio - 1.96 * se_ratio), "ratio_high": float(ratio + 1.96 * se_ratio),
        "slope": float(slope), "intercept": float(intercept), "log_slope": float(log_slope),
        "pearson": _corr(p, r), "spearman": float(scipy.stats.spearmanr(p, r)[0]) if np.ptp(p) > 0 else np.nan,
        "binned_pearson": _corr(cal.predicted, cal.realized) if multi else np.nan,
        "within_1se": float(np.mean(np.abs(cal.z) <= 1)), "within_2se": float(np.mean(np.abs(cal.z) <= 2)),
        "chi2_dof": float(z2.mean()) if z2.size else np.nan,
        "chi2_p": float(scipy.stats.chi2.sf(z2.sum(), z2.size)) if z2.size else np.nan,
        "bins": int(bins), "points": int(m),
    }


def _corr(a, b) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])
