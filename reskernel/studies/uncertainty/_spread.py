"""The NTK ensemble's predicted mean and variance of test outputs against the sample mean and
variance of actually trained networks, with the sampling error of a finite number of seeds.

At each time t, for S seeds and every test point i and output j:
  mean    z_ij = (mean_s f_sij - mu_ij) / sqrt(var_s f_sij / S)          (a t_{S-1} variable when
          the networks' mean is mu: |z| <= 2 for about 95% of the entries)
  spread  r_i  = pooled sample variance over the k outputs / sigma_i^2    (the ensemble's variance
          is one per point, shared by the outputs; the pooled variance has nu = k (S - 1)
          degrees of freedom, so r_i ~ chi^2_nu / nu when the networks' variance is sigma_i^2:
          inside the central 95% interval of chi^2_nu / nu for about 95% of the points)
Outputs of one network are independent only at infinite width, and the points of one network
are correlated: the fractions are indicative, the intervals per point exact for independent
outputs.
"""
import numpy as np
import scipy.stats

__all__ = ["compare_spread", "variance_interval"]


def variance_interval(dof: int, level: float = 0.95) -> tuple:
    """(low, high): the central `level` interval of chi^2_dof / dof, the ratio of a sample variance
    with dof degrees of freedom to the true variance of a Gaussian."""
    if dof < 1:
        raise ValueError(f"dof must be >= 1, got {dof}")
    a = (1 - level) / 2
    return float(scipy.stats.chi2.ppf(a, dof) / dof), float(scipy.stats.chi2.ppf(1 - a, dof) / dof)


def compare_spread(mean, variance, outputs, level: float = 0.95, *, resamples: int = 1000, seed: int = 0) -> list:
    """Agreement of trained networks' outputs with a predicted mean and variance, per time.

    Args:
      mean: (T, m, k) predicted means (ntk_ensemble(...).mean).
      variance: (T, m) predicted variances of each output (the ensemble's marginal variances).
      outputs: (S, T, m, k) outputs of S trained networks (S >= 2).
      level: the intervals' coverage.
      resamples, seed: the bootstrap over seeds (numpy.random.default_rng(seed)).
    Returns:
      One dict per time: seeds, dof; z_rms (root mean square of the mean's z, about 1 when the
      means agree), z_within_2 (fraction of entries with |z| <= 2), z_max; mean_rms (rms of the
      predicted mean) and mean_gap_rms (rms of sample mean - predicted mean): the size of the
      signal and of the difference; var_pred, var_sample (mean over points), var_ratio (their
      ratio), ratio_median, ratio_geomean (over points of r_i), ratio_low, ratio_high (the
      per-point interval of r_i), ratio_within (fraction of points inside it), and
      var_ratio_low, var_ratio_high: a `level` confidence interval of var_ratio, bootstrapped over
      the seeds (`resamples` draws of S seeds with replacement; percentiles shifted by the
      bootstrap's bias): it holds the
      correlation between the points and outputs of one network, which chi^2 intervals ignore;
      drift, drift_low, drift_high: var_ratio over the first time's, with its bootstrap interval
      (the same networks at both times: whether the agreement changes during training).
    """
    mean, variance, outputs = (np.asarray(a, np.float64) for a in (mean, variance, outputs))
    if outputs.ndim != 4 or mean.shape != outputs.shape[1:] or variance.shape != mean.shape[:2]:
        raise ValueError(f"need mean (T, m, k), variance (T, m), outputs (S, T, m, k) of matching sizes, got "
                         f"{mean.shape}, {variance.shape}, {outputs.shape}")
    s, _, m, k = outputs.shape
    if s < 2:
        raise ValueError(f"need outputs of at least 2 seeds, got {s}")
    dof = k * (s - 1)
    low, high = variance_interval(dof, level)
    # bootstrap: seed counts (B, S); each draw's sample variances from the weighted sums
    counts = np.stack([np.bincount(d, minlength=s)
                       for d in np.random.default_rng(seed).integers(0, s, size=(resamples, s))]).astype(np.float64)
    q = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
    rows, first = [], None
    for t in range(mean.shape[0]):
        f = outputs[:, t]
        sm, sv = f.mean(0), f.var(0, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (sm - mean[t]) / np.sqrt(sv / s)
        pooled = sv.mean(-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = pooled / variance[t]
        ok = np.isfinite(r) & (r > 0)
        var_ratio = pooled.mean() / variance[t].mean()
        flat = f.reshape(s, -1)
        s1, s2 = counts @ flat, counts @ flat ** 2
        boot = ((s2 - s1 ** 2 / s) / (s - 1)).mean(-1) / variance[t].mean()
        # percentiles shifted by the bootstrap's bias (a resample repeats seeds, so its sample
        # variance is low by about (S - 1) / S)
        boot_low, boot_high = np.percentile(boot, q) - (boot.mean() - var_ratio)
        if first is None:
            first = (var_ratio, boot)
        with np.errstate(divide="ignore", invalid="ignore"):   # a draw of one seed repeated has no variance
            drift = boot / first[1]
        drift = drift[np.isfinite(drift)]
        drift_low, drift_high = np.percentile(drift, q) - (drift.mean() - var_ratio / first[0])
        rows.append({
            "seeds": int(s), "dof": int(dof),
            "z_rms": float(np.sqrt(np.mean(z[np.isfinite(z)] ** 2))) if np.isfinite(z).any() else float("nan"),
            "z_within_2": float(np.mean(np.abs(z) <= 2)), "z_max": float(np.nanmax(np.abs(z))),
            "mean_rms": float(np.sqrt(np.mean(mean[t] ** 2))), "mean_gap_rms": float(np.sqrt(np.mean((sm - mean[t]) ** 2))),
            "var_pred": float(variance[t].mean()), "var_sample": float(pooled.mean()), "var_ratio": float(var_ratio),
            "var_ratio_low": float(boot_low), "var_ratio_high": float(boot_high),
            "drift": float(var_ratio / first[0]), "drift_low": float(drift_low), "drift_high": float(drift_high),
            "ratio_median": float(np.median(r[ok])) if ok.any() else float("nan"),
            "ratio_geomean": float(np.exp(np.mean(np.log(r[ok])))) if ok.any() else float("nan"),
            "ratio_low": low, "ratio_high": high, "ratio_within": float(np.mean((r >= low) & (r <= high))),
        })
    return rows
