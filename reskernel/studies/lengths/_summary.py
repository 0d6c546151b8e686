"""Measured statistics of simulated lengths, with standard errors, beside the theory."""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import numpy as np

from ._specs import LengthSpec
from ._theory import expected_empirical_variance, mean_bounds, mean_length, second_moment, second_moment_bound


@dataclasses.dataclass(frozen=True)
class LengthSummary:
    """Measured statistics (mean over seeds, standard error) beside theory, per layer j = 0..d.

    Arrays are float64 (depth+1,): mean, mean_se, mean_theory, mean_lower, mean_upper;
    second (E M^2), second_se, second_theory, second_upper; ratio = E[M^2]/E[M]^2, ratio_se
    (delta method), ratio_theory; q05, q95 (percentiles over seeds).  Scalars: fm2 (mean
    empirical variance across layers), fm2_se, fm2_theory; beta = sum_{j=1..d} 1/n_j.
    """

    spec: LengthSpec
    seeds: int
    mean: np.ndarray
    mean_se: np.ndarray
    mean_theory: np.ndarray
    mean_lower: np.ndarray
    mean_upper: np.ndarray
    second: np.ndarray
    second_se: np.ndarray
    second_theory: np.ndarray
    second_upper: np.ndarray
    ratio: np.ndarray
    ratio_se: np.ndarray
    ratio_theory: np.ndarray
    q05: np.ndarray
    q95: np.ndarray
    fm2: float
    fm2_se: float
    fm2_theory: float
    beta: float

    @property
    def mean_z(self) -> np.ndarray:
        """(mean - mean_theory) / mean_se per layer (0 where both agree exactly)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (self.mean - self.mean_theory) / self.mean_se
        return np.where(self.mean == self.mean_theory, 0.0, z)

    def to_dict(self) -> dict:
        def enc(v):
            if isinstance(v, np.ndarray):
                return [None if not np.isfinite(x) else float(x) for x in v]
            if isinstance(v, float):
                return None if not math.isfinite(v) else v
            return v

        d = {f.name: enc(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "spec"}
        d["spec"] = self.spec.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "LengthSummary":
        def dec(v):
            if isinstance(v, list):
                return np.array([np.nan if x is None else x for x in v], dtype=np.float64)
            return float("nan") if v is None else v

        kw = {f.name: dec(d[f.name]) for f in dataclasses.fields(cls) if f.name != "spec"}
        kw["seeds"] = int(d["seeds"])
        return cls(spec=LengthSpec.from_dict(d["spec"]), **kw)


def summarize(spec: LengthSpec, lengths, x0=None) -> LengthSummary:
    """Measured mean (and E[M^2], their ratio, percentiles, FM2) of `lengths` (seeds, depth+1)
    from `simulate(spec, ..., x0)`, with standard errors, beside the theory for `spec`."""
    m = np.asarray(lengths, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != spec.depth + 1:
        raise ValueError(f"lengths must have shape (seeds, depth+1) = (seeds, {spec.depth + 1}), got {m.shape}")
    s = m.shape[0]
    if s < 2:
        raise ValueError(f"lengths needs at least 2 seeds for standard errors, got {s}")
    root = math.sqrt(s)
    mean, m2 = m.mean(0), (m * m).mean(0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = m2 / mean**2
        influence = (m * m) / mean**2 - 2 * m2 * m / mean**3  # delta method for m2 / mean^2
        ratio_se = influence.std(0, ddof=1) / root
    inner = m[:, 1:]
    fm2 = (inner * inner).mean(1) - inner.mean(1) ** 2  # float64, as empirical_variance
    lower, upper = mean_bounds(spec, x0)
    theory, second = mean_length(spec, x0), second_moment(spec, x0)
    return LengthSummary(
        spec=spec, seeds=s,
        mean=mean, mean_se=m.std(0, ddof=1) / root, mean_theory=theory, mean_lower=lower, mean_upper=upper,
        second=m2, second_se=(m * m).std(0, ddof=1) / root, second_theory=second,
        second_upper=second_moment_bound(spec, x0),
        ratio=ratio, ratio_se=ratio_se, ratio_theory=second / theory**2,
        q05=np.percentile(m, 5, axis=0), q95=np.percentile(m, 95, axis=0),
        fm2=float(fm2.mean()), fm2_se=float(fm2.std(ddof=1) / root),
        fm2_theory=expected_empirical_variance(spec, x0),
        beta=float(sum(1.0 / n for n in spec.widths[1:])),
    )
