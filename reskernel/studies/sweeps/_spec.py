"""Sweep specifications: architecture families, grids, inputs, and what fits the memory and
number ranges before a sweep starts."""
from __future__ import annotations

import math
import os

import jax
import numpy as np

from ... import _checks
from ...core.arch import FeedForward, ResNet
from ...nets._lean import bytes_per_seed
from ...precision import enable_x64

__all__ = ["KERNELS", "METRICS", "parse_arch", "arch_name", "memory_budget", "seed_chunk", "max_width",
           "check_fits", "check_scale"]

KERNELS = ("nngp", "ntk")
METRICS = ("frob", "entry")


# --- specs ---------------------------------------------------------------------------

def parse_arch(spec):
    """"ffnet" | "resnet" (gamma = 1) | "resnet:GAMMA", or a FeedForward/ResNet(gamma=...)
    (its depth is ignored) -> (kind, gamma or None). The sweeps simulate the bias-free He-scaled
    ReLU nets only (reskernel.nets._lean): other activations or variances are refused."""
    if isinstance(spec, (FeedForward, ResNet)) and not spec.default:
        raise ValueError(f"sweeps simulate the default ReLU nets (relu, w_var = 2, b_var = 0) only; got activation "
                         f"{spec.activation.label}, w_var = {spec.w_var:g}, b_var = {spec.b_var:g}")
    if isinstance(spec, FeedForward):
        return ("ffnet", None)
    if isinstance(spec, ResNet):
        if spec.gamma is None:
            raise ValueError("sweeps need ResNet families a = depth^-gamma; give gamma, not alpha or scales")
        return ("resnet", float(spec.gamma))
    if not isinstance(spec, str):
        raise TypeError(f"arch must be 'ffnet', 'resnet[:gamma]' or a FeedForward/ResNet, got {spec!r}")
    s = spec.strip().lower()
    if s in ("ffnet", "feedforward"):
        return ("ffnet", None)
    if s == "resnet":
        return ("resnet", 1.0)
    if s.startswith("resnet:"):
        try:
            gamma = float(s.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"arch {spec!r}: gamma after 'resnet:' must be a number") from None
        if not (math.isfinite(gamma) and gamma >= 0):
            raise ValueError(f"arch {spec!r}: gamma must be finite and >= 0")
        return ("resnet", gamma)
    raise ValueError(f"arch must be 'ffnet', 'resnet' or 'resnet:GAMMA', got {spec!r}")


def arch_name(family) -> str:
    kind, gamma = family
    return "ffnet" if kind == "ffnet" else f"resnet:{gamma:g}"


def _arch(family, depth):
    kind, gamma = family
    return FeedForward(depth) if kind == "ffnet" else ResNet(depth, gamma=gamma)


def _int_grid(name, values, *, minimum=1):
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = [values]
    values = list(values)
    if not values:
        raise ValueError(f"{name} must be a non-empty list of ints >= {minimum}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must hold ints, got {v!r}")
        if v < minimum:
            raise ValueError(f"{name} must hold ints >= {minimum}, got {int(v)}")
        out.append(int(v))
    return sorted(set(out))


def _inputs(x, n_inputs, d_in, seed):
    if x is None:
        n = _checks.positive_int("n_inputs", n_inputs)
        d = _checks.positive_int("d_in", d_in)
        z = np.random.default_rng(seed).normal(size=(n, d))
        return z / np.linalg.norm(z, axis=1, keepdims=True), "unit sphere"
    with enable_x64(True):  # checked in float64: the analytic kernels are, and x may exceed float32's range
        x1, _ = _checks.inputs(x)
    x = np.asarray(x1, np.float64)
    if d_in is not None and x.shape[1] != d_in:
        raise ValueError(f"inputs have dimension {x.shape[1]} but d_in = {d_in}")
    return x, "given"


# --- memory --------------------------------------------------------------------------

def memory_budget(fraction: float = 0.5) -> int:
    """Bytes the vmapped seeds may use: `fraction` of the default device's memory limit
    (accelerators report it through memory_stats) or of the host's available memory."""
    dev = jax.devices()[0]
    stats = None
    try:
        stats = dev.memory_stats()
    except Exception:  # not every backend implements memory_stats
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(fraction * (stats["bytes_limit"] - stats.get("bytes_in_use", 0)))
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        avail = int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(fraction * avail)


def seed_chunk(arch, width, n, itemsize, seeds, budget) -> int:
    """Seeds per vmapped batch that fit `budget` bytes (at least 1, at most `seeds`)."""
    return int(max(1, min(seeds, budget // max(1, bytes_per_seed(arch, width, n, itemsize)))))



# --- what fits -------------------------------------------------------------------------

def max_width(kind: str) -> int:
    """Widest network the lean simulator draws: each layer's weights are one hash_normal draw
    of fewer than 2^32 numbers (m^2 for an FFNet layer, 2 m^2 for a ResNet block's W and V)."""
    return math.isqrt(2 ** 32 - 1) if kind == "ffnet" else math.isqrt((2 ** 32 - 1) // 2)


def _gib(n: float) -> str:
    return f"{n / 2 ** 30:.3g} GiB"


def check_fits(families, depths, widths, x_shape, dtype, budget):
    """Raise ValueError, with the memory each one needs, when a cell's single network cannot be
    simulated: more than `budget` bytes (seeds are vmapped in chunks, but a chunk holds at least
    one network) or wider than `max_width`."""
    n_inputs, d_in = x_shape
    itemsize = np.dtype(dtype).itemsize
    bad, too_wide = [], False
    for fam in families:
        deepest = _arch(fam, max(depths))
        for width in widths:
            need = bytes_per_seed(deepest, width, n_inputs, itemsize)
            wide = width > max_width(fam[0]) or width * (d_in + 1) >= 2 ** 32
            if need > budget or wide:
                bad.append(f"{arch_name(fam)} depth {deepest.depth} width {width} needs {_gib(need)} per network"
                           + (f", and is wider than the simulator's {max_width(fam[0])}" if wide else ""))
                too_wide |= wide
    if bad:
        raise ValueError(
            f"{'; '.join(bad[:6])}{'; ...' if len(bad) > 6 else ''} ({n_inputs} inputs, {dtype}): the memory budget "
            f"is {_gib(budget)} (memory_bytes, --memory-gb; default half of the available device or host memory)"
            + ("; each layer's weights are drawn at once, fewer than 2^32 numbers" if too_wide else "")
            + ". Use smaller widths or fewer inputs, or raise the budget where the memory exists")


def check_scale(families, depths, x, dtype):
    """Raise ValueError when the kernels would leave the range of the simulation dtype (the
    analytic kernels are float64): their size is |x|^2 times the ResNet growth prod_l (1 + a_l^2)
    times depth, and the message says which of the two is too large."""
    top = float(np.abs(x).max())
    log10_norm2 = 2 * (math.log10(top) + math.log10(float(np.linalg.norm(x / top, axis=1).max())))
    for kind in dict.fromkeys((np.dtype(dtype).name, "float64")):
        limit = math.log10(float(np.finfo(kind).max))
        for fam in families:
            for depth in depths:
                arch = _arch(fam, depth)
                growth = 0.0 if fam[0] == "ffnet" else float(np.log10(1 + np.square(arch.branch_scales)).sum())
                total = log10_norm2 + growth + math.log10(depth + 1.0)
                if total <= limit - 1:
                    continue
                if log10_norm2 >= growth:
                    what, fix = (f"inputs of squared norm up to 10^{log10_norm2:.0f}",
                                 "rescale the inputs (e.g. to unit norm, the default)")
                else:
                    what, fix = (f"{arch_name(fam)} grows like prod_l (1 + a_l^2) = 10^{growth:.0f} over {depth} "
                                 "blocks", "use gamma >= 1/2 or fewer blocks")
                raise ValueError(f"kernels of ~10^{total:.0f} at depth {depth} ({what}) are beyond the range of "
                                 f"{kind} (10^{limit:.0f}); {fix}")
