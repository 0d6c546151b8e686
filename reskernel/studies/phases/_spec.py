"""The phase-diagram grid: activations, (w_var, b_var) points (a product grid, plus the critical
line at each b_var), architectures and depths, checked before anything is computed; and each
point's FFNet signal propagation (phase, chi_1, q*, c*, xi_c) and each ResNet's chi_total."""
from __future__ import annotations

import functools
import math
import re
from typing import NamedTuple, Optional

import numpy as np

from ...core.activations import NAMES
from ...core.arch import FeedForward, ResNet
from ...core.signal import critical_line, signal_propagation
from ..sweeps._spec import arch_name, parse_arch

__all__ = ["Point", "parse_values", "parse_activations", "parse_archs", "grid_points", "family", "point_signal",
           "resnet_chi_total", "ACTIVATIONS"]

ACTIVATIONS = ("tanh", "erf", "relu")
# A grid point closer than this (relative) to the critical w_var is taken to be on the line
# (ReLU's w_var = 2), instead of adding a second point beside it.
SAME_POINT = 1e-9


class Point(NamedTuple):
    """One (w_var, b_var) of an activation's grid; on_line: placed on the critical line."""

    w_var: float
    b_var: float
    on_line: bool


def parse_values(spec, *, name: str, positive: bool) -> list:
    """"0.5,1,2" or "start:stop:count" (count evenly spaced values, both ends included), mixed
    with commas -> sorted unique floats, each finite and > 0 (positive) or >= 0."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"{name}: give values like '0.5,1,2' or '0.5:4:8', got {spec!r}")

    def number(text, part):
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{name}: cannot read {part!r}; use numbers separated by commas or "
                             "'start:stop:count'") from None

    out = []
    for part in spec.split(","):
        part = part.strip()
        if ":" not in part:
            out.append(number(part, part))
            continue
        m = re.fullmatch(r"([^:]+):([^:]+):(\d+)", part)
        if m is None:
            raise ValueError(f"{name}: cannot read the range {part!r}; use 'start:stop:count'")
        lo, hi, k = number(m.group(1), part), number(m.group(2), part), int(m.group(3))
        if not (math.isfinite(lo) and math.isfinite(hi)) or k < 1 or hi < lo:
            raise ValueError(f"{name}: bad range {part!r}: need finite start <= stop and count >= 1")
        out.extend(np.linspace(lo, hi, k).tolist() if k > 1 else [lo])
    bound = "> 0" if positive else ">= 0"
    for v in out:
        if not math.isfinite(v) or v < 0 or (positive and v == 0):
            raise ValueError(f"{name}: every value must be finite and {bound}, got {v:g}")
    return sorted(set(round(v, 12) for v in out))


def parse_activations(spec) -> list:
    """Comma list of activation names (reskernel.activations.NAMES), without repeats."""
    names = [s.strip() for s in str(spec).split(",") if s.strip()]
    if not names:
        raise ValueError("activations: give at least one name, e.g. tanh,erf,relu")
    for s in names:
        if s not in NAMES:
            raise ValueError(f"activations: unknown activation {s!r}; known: {', '.join(sorted(NAMES))}")
    return list(dict.fromkeys(names))


def parse_archs(spec) -> list:
    """Comma list of ffnet, resnet:GAMMA (resnet alone: gamma = 1) -> unique names ("resnet:0.5")."""
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if str(s).strip()]
    if not items:
        raise ValueError("archs: give at least one of ffnet, resnet:GAMMA")
    try:
        return list(dict.fromkeys(arch_name(parse_arch(s)) for s in items))
    except (ValueError, TypeError) as e:
        raise ValueError(f"archs: {e}") from None


@functools.lru_cache(maxsize=None)
def _critical(activation: str, b_var: float) -> float:
    try:
        return float(critical_line(activation, b_var))
    except ValueError as e:
        raise ValueError(f"activation {activation}: no critical line at b_var = {b_var:g} ({e}); "
                         "leave out --critical for it") from None


def critical_w(activation: str, b_var: float) -> float:
    """The w_var on the order-to-chaos line at b_var (reskernel.critical_line, remembered)."""
    return _critical(activation, float(b_var))


def grid_points(activation: str, w_vars, b_vars, *, critical: bool = True) -> list:
    """The product grid w_vars x b_vars and, with critical, one point on the critical line per
    b_var (a grid point within SAME_POINT of it is marked on the line instead)."""
    pts = {(float(w), float(b)): False for b in b_vars for w in w_vars}
    if critical:
        for b in b_vars:
            wc = critical_w(activation, b)
            near = [w for w in w_vars if abs(w - wc) <= SAME_POINT * wc]
            pts[(float(near[0]) if near else wc, float(b))] = True
    return [Point(w, b, on) for (w, b), on in sorted(pts.items(), key=lambda t: (t[0][1], t[0][0]))]


def family(arch: str, activation: str, w_var: float, b_var: float, depth: int = 1):
    """The study's net: unit-norm inputs with in_var = 1 (q_1 = 1 + b_var), readout out_var = 1."""
    kind, gamma = parse_arch(arch)
    if kind == "ffnet":
        return FeedForward(depth, w_var=w_var, b_var=b_var, activation=activation)
    return ResNet(depth, gamma=gamma, w_var=w_var, b_var=b_var, activation=activation)


def _finite(v) -> Optional[float]:
    """JSON-safe: None where v is inf or nan (the meta says what None means per field)."""
    v = float(v)
    return v if math.isfinite(v) else None


@functools.lru_cache(maxsize=None)
def point_signal(activation: str, w_var: float, b_var: float) -> dict:
    """The FFNet's signal propagation at the point, for unit-norm inputs (sq = 1): phase, chi_1,
    q_star (None: unbounded), c_star (None: none), xi_c (None: infinite), w_crit; and
    signal_error where signal_propagation refused the point."""
    out = {"phase": None, "chi_1": None, "q_star": None, "c_star": None, "xi_c": None, "signal_error": None}
    try:
        s = signal_propagation(FeedForward(1, w_var=w_var, b_var=b_var, activation=activation), sq=1.0)
    except ValueError as e:
        out["signal_error"] = str(e)
        return out
    out.update(phase=s.phase, chi_1=_finite(s.chi_1), q_star=_finite(s.q_star), c_star=_finite(s.c_star),
               xi_c=_finite(s.xi_c))
    return out


def resnet_chi_total(arch: str, activation: str, w_var: float, b_var: float, depth: int) -> Optional[float]:
    """The depth-`depth` ResNet's slope of the correlation map at rho = 1 (signal_propagation's
    chi_total, unit-norm inputs); None for the FFNet or where it is refused."""
    if parse_arch(arch)[0] == "ffnet":
        return None
    try:
        return _finite(signal_propagation(family(arch, activation, w_var, b_var, depth), sq=1.0).chi_total)
    except ValueError:
        return None
