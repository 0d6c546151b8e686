"""Gradient descent on the closed-form population loss, vmapped over runs.

Teachers and initializations (sample_problems):
  w* uniform on the unit sphere of R^p; a* uniform on the sphere of radius
  `teacher_norm` in R^k; a_0 uniform in the ball B(0, a_init_scale |1.a*| / sqrt(k))
  (at scale 1 Du et al.'s ball |1.a*| |w*| / sqrt(k); Liu et al. start a_0
  anywhere in a ball); w_0 = 0 (Liu et al.) or, with w_init_norm > 0, uniform
  on the sphere of that radius (Du et al.'s random filter).

From w_0 = 0 the first step points along +-w* (every gradient lies in
span(w, w*) by rotation invariance), so w stays on that line and the angle to
w* is 0 or pi for good: the outcome does not depend on p. At w = 0 the
gradient is grad_w = -c w*, grad_a = 0, with (see `first_step`)
  c = sum_j (a_j / 2 + s / k) (a*_j / 2 + s / k),   s = 1 with the shortcut, 0 without,
so the first step points toward w* iff c > 0; the shortcut adds
(1.a + 1.a*) / (2k) + 1/k to the CNN's a.a* / 4. Since grad_a = 0 at w = 0 (the
un-normalized ReLU branch vanishes there), a cannot move before w does, and a
warm-up of the first layer's step size does not change the direction taken.

Schedule (the two-stage step size): both layers take steps of size `lr`,
except the first layer, which takes lr * warmup_factor during the first
`warmup_steps` steps (a learning-rate warm-up for w; warmup_steps = 0 is
plain gradient descent).
"""
from __future__ import annotations

import dataclasses
import functools
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..._checks import positive_int
from ...core.arch import _check_scale
from .model import ConvNet, Params, angle, check_params, loss

__all__ = ["Schedule", "Trajectory", "Outcome", "sample_problems", "gradient_descent",
           "outcomes", "first_step", "GLOBAL", "SPURIOUS", "UNCONVERGED"]

# Outcome codes of a run (see `outcomes`).
GLOBAL, SPURIOUS, UNCONVERGED = 0, 1, 2


def _fraction(name, value) -> float:
    value = _check_scale(name, value, allow_zero=False)
    if value > 1:
        raise ValueError(f"{name} must be in (0, 1], got {value}")
    return value


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Gradient-descent schedule: `steps` steps of size `lr` for both layers, the
    first layer's step multiplied by `warmup_factor` for the first `warmup_steps`."""

    lr: float
    steps: int
    warmup_steps: int = 0
    warmup_factor: float = 0.1

    def __post_init__(self):
        object.__setattr__(self, "lr", _check_scale("lr", self.lr, allow_zero=False))
        object.__setattr__(self, "steps", positive_int("steps", self.steps))
        ws = self.warmup_steps
        if isinstance(ws, bool) or not isinstance(ws, numbers.Integral):
            raise TypeError(f"warmup_steps must be an int >= 0, got {ws!r}")
        if not 0 <= ws <= self.steps:
            raise ValueError(f"warmup_steps must be in [0, steps = {self.steps}], got {ws}")
        object.__setattr__(self, "warmup_steps", int(ws))
        object.__setattr__(self, "warmup_factor", _fraction("warmup_factor", self.warmup_factor))



class Trajectory(NamedTuple):
    """Per-step record of one run, steps + 1 entries (the initialization first)."""

    loss: jax.Array      # (T+1,)
    angle: jax.Array     # (T+1,) angle between w and w*, in [0, pi]
    w_norm: jax.Array    # (T+1,)
    a: jax.Array         # (T+1, k)


class Outcome(NamedTuple):
    """End state of runs: code (GLOBAL, SPURIOUS or UNCONVERGED), relative loss
    l / l(0, 0) = l / (E[y^2] / 2), and the angle between w and w*."""

    code: jax.Array
    rel_loss: jax.Array
    angle: jax.Array


def _sphere(key, shape, radius, dtype):
    x = jax.random.normal(key, shape, dtype)
    return radius * x / jnp.linalg.norm(x, axis=-1, keepdims=True)


@functools.partial(jax.jit, static_argnums=(0, 1, 3))
def _sample(p, k, key, runs, teacher_norm, a_init_scale, w_init_norm):
    dtype = jnp.result_type(float)
    kw, ka, ka0, kr, kw0 = jax.random.split(key, 5)
    teacher = Params(_sphere(kw, (runs, p), 1.0, dtype), _sphere(ka, (runs, k), teacher_norm, dtype))
    ball = a_init_scale * jnp.abs(jnp.sum(teacher.a, axis=-1, keepdims=True)) / jnp.sqrt(k)
    radius = ball * jax.random.uniform(kr, (runs, 1), dtype) ** (1.0 / k)
    init = Params(_sphere(kw0, (runs, p), w_init_norm, dtype), _sphere(ka0, (runs, k), 1.0, dtype) * radius)
    return teacher, init


def sample_problems(net: ConvNet, key, runs: int, *, teacher_norm: float = 1.0,
                    a_init_scale: float = 1.0, w_init_norm: float = 0.0):
    """`runs` random teachers and initializations (see module notes) -> (teacher, init),
    each a Params with w (runs, p) and a (runs, k).

    The draws depend only on (key, p, k, runs), not on `net.shortcut`, so the
    two architectures can be compared on the same teachers (paired runs)."""
    if not isinstance(net, ConvNet):
        raise TypeError(f"net must be a reskernel.shortcut.ConvNet, got {type(net).__name__}")
    runs = positive_int("runs", runs)
    teacher_norm = _check_scale("teacher_norm", teacher_norm, allow_zero=False)
    a_init_scale = _check_scale("a_init_scale", a_init_scale, allow_zero=True)
    w_init_norm = _check_scale("w_init_norm", w_init_norm, allow_zero=True)
    return _sample(net.patch_dim, net.patches, key, runs, teacher_norm, a_init_scale, w_init_norm)


def _metrics(net, params, teacher):
    return (loss(net, params, teacher), angle(params.w, teacher.w),
            jnp.linalg.norm(params.w, axis=-1), params.a)


def _descend(net, steps, record, init, teacher, lr, warmup_steps, warmup_factor):
    grad = jax.grad(loss, argnums=1)

    def step(params, t):
        g = grad(net, params, teacher)
        lr_w = jnp.where(t < warmup_steps, lr * warmup_factor, lr)
        new = Params(params.w - lr_w * g.w, params.a - lr * g.a)
        return new, (_metrics(net, params, teacher) if record else None)

    final, history = jax.lax.scan(step, init, jnp.arange(steps))
    if not record:
        return final, None
    last = _metrics(net, final, teacher)
    return final, Trajectory(*(jnp.concatenate([h, l[None]]) for h, l in zip(history, last)))


# The schedule's numbers are traced (one compilation serves every lr and warm-up);
# only the number of steps is static.
@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _descend_runs(net, steps, record, init, teacher, lr, warmup_steps, warmup_factor):
    run = lambda i, t: _descend(net, steps, record, i, t, lr, warmup_steps, warmup_factor)
    return jax.vmap(run)(init, teacher)


def gradient_descent(net: ConvNet, schedule: Schedule, init: Params, teacher: Params, *,
                     record: bool = False):
    """Gradient descent on the population loss from `init` toward `teacher`.

    init, teacher: Params with w (runs, p), a (runs, k) (or (p,), (k,) for one run).
    Returns (final Params of the same shapes, Trajectory with a leading run axis
    when record=True, else None). Runs are vmapped, steps a lax.scan.
    """
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    init, teacher = check_params(net, init, "init"), check_params(net, teacher, "teacher")
    if init.w.shape != teacher.w.shape:
        raise ValueError(f"init and teacher must hold the same runs; got w shapes {init.w.shape} and {teacher.w.shape}")
    if init.w.ndim > 2:
        raise ValueError(f"init must have w of shape (runs, p) or (p,), got {init.w.shape}")
    single = init.w.ndim == 1
    if single:
        init, teacher = jax.tree_util.tree_map(lambda x: x[None], (init, teacher))
    dtype = init.w.dtype
    final, traj = _descend_runs(net, schedule.steps, bool(record), init, teacher,
                                jnp.asarray(schedule.lr, dtype), schedule.warmup_steps,
                                jnp.asarray(schedule.warmup_factor, dtype))
    if single:
        final, traj = jax.tree_util.tree_map(lambda x: x[0], (final, traj))
    return final, traj


@functools.partial(jax.jit, static_argnums=0)
def _outcomes(net, params, teacher, tol):
    zero = Params(jnp.zeros_like(teacher.w), jnp.zeros_like(teacher.a))
    rel = loss(net, params, teacher) / loss(net, zero, teacher)
    ang = angle(params.w, teacher.w)
    code = jnp.where(rel < tol, GLOBAL, jnp.where(ang > jnp.pi / 2, SPURIOUS, UNCONVERGED))
    return Outcome(code, rel, ang)


def outcomes(net: ConvNet, params: Params, teacher: Params, *, tol: float = 1e-3) -> Outcome:
    """Classify end states: GLOBAL where the relative loss is below `tol`, else
    SPURIOUS where w points away from w* (angle > pi/2), else UNCONVERGED."""
    params, teacher = check_params(net, params, "params"), check_params(net, teacher, "teacher")
    tol = _check_scale("tol", tol, allow_zero=False)
    return _outcomes(net, params, teacher, tol)


def first_step(net: ConvNet, a, teacher_a):
    """c in grad_w l(0, a) = -c w* (closed form, module notes): a, teacher_a (..., k) -> (...).

    c > 0: gradient descent from w_0 = 0 first moves w toward w*; c < 0: toward -w*."""
    if not isinstance(net, ConvNet):
        raise TypeError(f"net must be a reskernel.shortcut.ConvNet, got {type(net).__name__}")
    a, teacher_a = jnp.asarray(a), jnp.asarray(teacher_a)
    if a.shape[-1:] != (net.patches,) or teacher_a.shape[-1:] != (net.patches,):
        raise ValueError(f"a and teacher_a must have shape (..., k = {net.patches}); got {a.shape}, "
                         f"{teacher_a.shape}")
    s = 1.0 / net.patches if net.shortcut else 0.0
    return jnp.sum((a / 2 + s) * (teacher_a / 2 + s), axis=-1)
