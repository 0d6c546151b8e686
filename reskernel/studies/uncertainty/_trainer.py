"""Finite-width networks with k outputs trained by full-batch gradient descent on
(1/2) sum_i |f(x_i) - y_i|^2, the loss and the step of reskernel.inference.ensemble, so that an
ensemble of them over seeds can be set beside the infinite-width NTK ensemble.

A k-output network is reskernel's network (`rk.network(arch, width)`, one description with the
kernels) whose readout v (m,) is a matrix V (m, k), and b_out () a vector (k,):
f(x) = features(x) @ V + sqrt(b_var) b_out, all entries N(0, 1). At infinite width its outputs
are k independent copies of the scalar net's, with NTK Theta (x) I_k: the ensemble formulas apply
column by column.

    out = train_networks(rk.FeedForward(3), 1024, x_train, y_train, x_test, lr=0.01, steps=[0, 10, 100],
                         keys=jax.random.split(jax.random.PRNGKey(0), 20))
    out.outputs.shape        # (20, 3, m, k): seeds, steps, test points, outputs
"""
import dataclasses
import functools
import math
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ...core.arch import FeedForward, check_trained
from ...nets.networks import network, param_groups
from ._layerwise import resnet_step

__all__ = ["MultiOutput", "Trained", "gradient_descent", "train_networks"]

# fold_in constant of the k-output readout's key stream ("head" in ASCII)
_HEAD_STREAM = 0x68656164


@dataclasses.dataclass(frozen=True)
class MultiOutput:
    """The network of `arch` and `width` with `outputs` readout columns (module doc).

    Parameters are those of rk.network(arch, width).init with "readout" (m, k) and, when
    arch.b_var > 0, "readout_bias" (k,).
    """

    arch: object
    width: int
    outputs: int

    def __post_init__(self):
        if isinstance(self.outputs, bool) or not isinstance(self.outputs, numbers.Integral) or self.outputs < 1:
            raise ValueError(f"outputs must be an int >= 1, got {self.outputs!r}")
        object.__setattr__(self, "net", network(self.arch, self.width))

    def init(self, key, d_in: int, dtype=jnp.float32) -> dict:
        """The scalar net's parameters for key, the readout redrawn as (m, k) (and its bias (k,))."""
        params = self.net.init(key, d_in, dtype=dtype)
        head = jax.random.fold_in(key, _HEAD_STREAM)
        k1, k2 = jax.random.split(head)
        params["readout"] = jax.random.normal(k1, (self.width, self.outputs), dtype)
        if "readout_bias" in params:
            params["readout_bias"] = jax.random.normal(k2, (self.outputs,), dtype)
        return params

    def apply(self, params, x):
        """f(x) (n, k) for x (n, d)."""
        # the scalar net computes the features; its own readout is not used (any of the right shape)
        scalar = dict(params, readout=params["readout"][:, 0])
        if "readout_bias" in params:
            scalar["readout_bias"] = params["readout_bias"][0]
        return self.readout(params, self.net.features(scalar, x))

    def readout(self, params, features):
        """f (n, k) from the features (n, m): features @ V + sqrt(b_var) b_out."""
        out = features @ params["readout"]
        if "readout_bias" in params:
            out = out + math.sqrt(self.arch.b_var) * params["readout_bias"]
        return out


class Trained(NamedTuple):
    """Outputs of networks trained by gradient descent, float64 NumPy.

    Attributes:
      outputs: (..., T, m, k) f at the evaluation points after each of `steps`.
      train_loss: (..., T) (1/2) sum |f(x_train) - y_train|^2 after each of `steps`.
    """

    outputs: np.ndarray
    train_loss: np.ndarray


def _check_steps(steps) -> tuple:
    s = np.atleast_1d(np.asarray(steps))
    if s.ndim != 1 or s.size == 0 or not np.issubdtype(s.dtype, np.number) or (s != np.round(s)).any() \
            or (s < 0).any() or (np.diff(s) < 0).any():
        raise ValueError(f"steps must be non-decreasing integers >= 0, got {steps!r}")
    return tuple(int(v) for v in s)


def _check_lr(lr) -> float:
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite real > 0, got {lr!r}")
    return float(lr)


def _split(params, trainable):
    """(moving, fixed): the params that gradient descent moves, and the others."""
    return {k: params[k] for k in trainable}, {k: v for k, v in params.items() if k not in trainable}


def _loss(apply, moving, fixed, x, y):
    """(1/2) sum |f(x) - y|^2 of the net with parameters moving and fixed."""
    return 0.5 * jnp.sum((apply({**moving, **fixed}, x) - y) ** 2)


def _step(apply, moving, fixed, x, y, lr):
    """One full-batch gradient-descent step of the moving parameters."""
    return jax.tree.map(lambda a, g: a - lr * g, moving, jax.grad(_loss, argnums=1)(apply, moving, fixed, x, y))


def _descend(apply, params, trainable, x_train, y_train, x_eval, lr, steps):
    """Pure JAX: (outputs (T, m, k), train losses (T,)) along full-batch gradient descent."""
    moving, fixed = _split(params, trainable)
    outs, losses = [], []
    for gap in np.diff((0,) + steps):
        if gap:
            moving, _ = jax.lax.scan(lambda p, _: (_step(apply, p, fixed, x_train, y_train, lr), None), moving, None,
                                     length=int(gap))
        outs.append(apply({**moving, **fixed}, x_eval))
        losses.append(_loss(apply, moving, fixed, x_train, y_train))
    return jnp.stack(outs), jnp.stack(losses)


def gradient_descent(apply, params: dict, x_train, y_train, x_eval, *, lr: float, steps, trainable=None) -> Trained:
    """Full-batch gradient descent theta <- theta - lr dL/dtheta on L = (1/2) sum |apply(theta, x_train) - y_train|^2.

    Args:
      apply: f(params, x) -> (n, k) (or (n,) with 1-d targets), a JAX function.
      params: dict of arrays, the starting point; its dtype is the arithmetic's.
      x_train, y_train: (n, d) and (n, k) (or (n,)).
      x_eval: (m, d) points whose outputs are returned.
      lr: the learning rate (a Python float keeps float32 updates float32).
      steps: non-decreasing step counts >= 0 at which to evaluate (0: the initial outputs).
      trainable: names of the params that move (default: all); the others keep their values.
    Returns:
      Trained(outputs (T, m, k), train_loss (T,)), float64.

    Example:
      >>> import jax.numpy as jnp
      >>> x, y = jnp.array([[1.0], [2.0]]), jnp.array([[1.0], [0.0]])
      >>> out = gradient_descent(lambda p, x: x @ p["w"], {"w": jnp.zeros((1, 1))}, x, y, x, lr=0.1, steps=[0, 1])
      >>> out.outputs[:, :, 0].round(6).tolist()        # w_1 = 0 - 0.1 (1 (0 - 1) + 2 (0 - 0)) = 0.1
      [[0.0, 0.0], [0.1, 0.2]]
    """
    steps, lr = _check_steps(steps), _check_lr(lr)
    names = tuple(params) if trainable is None else tuple(trainable)
    unknown = [n for n in names if n not in params]
    if unknown:
        raise ValueError(f"trainable names {unknown} are not among the params {list(params)}")
    run = jax.jit(lambda p, a, b, c: _descend(apply, p, names, a, b, c, lr, steps))
    outs, losses = run(params, *(jnp.asarray(a) for a in (x_train, y_train, x_eval)))
    return Trained(np.asarray(outs, np.float64), np.asarray(losses, np.float64))


def train_networks(arch, width: int, x_train, y_train, x_eval, *, lr: float, steps, keys, trained: str = "all",
                   dtype=jnp.float32, centred: bool = False) -> Trained:
    """Networks of `arch` and `width` with k = y_train.shape[1] outputs, one per key, initialized
    i.i.d. N(0, 1) and trained by full-batch gradient descent (gradient_descent), as the NTK
    ensemble's networks are (reskernel.inference.ensemble: same loss, lr and step count).

    Args:
      arch, width: the network (MultiOutput(arch, width, k)).
      x_train (n, d), y_train (n, k), x_eval (m, d): data (cast to dtype).
      lr, steps: as in gradient_descent.
      keys: (S, 2) PRNG keys (jax.random.split(key, S)), one network each; run one after
        another (lax.map: one net's weights and gradients stay in cache).
      trained: "all" (every parameter moves: the standard NTK, reskernel.kernel(...,
        trained="all")) or "hidden" (readout and ResNet embedding fixed at init).
      dtype: the parameters' and the arithmetic's dtype (float32 default).
      centred: each network is trained on y_train + f_0(x_train) and read as f_t - f_0, f_0
        its initial function (in dtype): a network whose outputs start at 0, whose
        infinite-width limit is the NTK ensemble's mean (train_loss: (1/2) sum |f_t - f_0 - y|^2).
    Returns:
      Trained(outputs (S, T, m, k), train_loss (S, T)), float64.

    Memory: one jitted program holds ~4 copies of a network's parameters (XLA's loop buffers).
    Networks whose parameters exceed _LEAN_BYTES (256 MiB; at width 1,024 and d = 784: ResNets
    from L = 32, FFNets from L = 65) are stepped from the host instead, one jitted call per
    gradient-descent step with the parameters donated, the same arithmetic. XLA's analysis of
    the step at width 1,024, L = 100: an FFNet's holds 1.20 copies of the parameters beyond them
    (their gradient), a ResNet's 0.07 (each block updated in place during the backward pass:
    _layerwise.resnet_step).
    """
    steps, lr, trained = _check_steps(steps), _check_lr(lr), check_trained(trained)
    y = jnp.asarray(y_train, dtype)
    if y.ndim != 2:
        raise ValueError(f"y_train must have shape (n, k), got {y.shape}")
    names = tuple(param_groups(arch, trained))
    xa, xe = jnp.asarray(x_train, dtype), jnp.asarray(x_eval, dtype)
    k, name = y.shape[1], jnp.dtype(dtype).name
    # centred: f_0 at x_eval is the outputs at step 0, evaluated by the same program (exactly 0 there)
    extra = bool(centred) and steps[0] != 0
    run = (0,) + steps if extra else steps
    if _param_bytes(arch, width, k, xa.shape[1], dtype) > _LEAN_BYTES:
        outs, losses = _lean(_lean_fns(arch, width, k, names, lr, name), jnp.asarray(keys), xa, y, xe, run,
                             bool(centred))
    else:
        outs, losses = _compiled(arch, width, k, names, lr, run, name, bool(centred))(jnp.asarray(keys), xa, y, xe)
    if centred:
        outs = outs - outs[:, :1]
        outs, losses = (outs[:, 1:], losses[:, 1:]) if extra else (outs, losses)
    return Trained(np.asarray(outs, np.float64), np.asarray(losses, np.float64))


# Parameter bytes above which train_networks steps from the host with donated buffers.
_LEAN_BYTES = 1 << 28


def _param_bytes(arch, width, outputs, d_in, dtype) -> int:
    shapes = jax.eval_shape(lambda k: MultiOutput(arch, width, outputs).init(k, d_in, dtype), jax.random.PRNGKey(0))
    return sum(v.size * v.dtype.itemsize for v in jax.tree.leaves(shapes))


def _lean(fns, keys, xa, y, xe, steps, centred):
    """train_networks' run for large networks: (outputs (S, T, m, k), losses (S, T)), each network
    initialized by one jitted call and advanced by one jitted, donated call per step (fns:
    _lean_fns)."""
    init, step, evaluate, apply = fns
    outs, losses = [], []
    for key in keys:
        moving, fixed = init(key, xa)
        yk = y + apply(moving, fixed, xa) if centred else y
        got, done = [], 0
        for s in steps:
            for _ in range(s - done):
                moving = step(moving, fixed, xa, yk)
            done = s
            got.append(evaluate(moving, fixed, xa, yk, xe))
        outs.append(jnp.stack([g[0] for g in got]))
        losses.append(jnp.stack([g[1] for g in got]))
        del moving, fixed   # freed before the next network's init, not after it
    return jnp.stack(outs), jnp.stack(losses)


@functools.lru_cache(maxsize=8)
def _lean_fns(arch, width, outputs, names, lr, dtype):
    """The jitted init ((moving, fixed) parameters), step (moving donated), evaluation (outputs
    at xe, training loss) and outputs at x of _lean: _descend's split, loss and step."""
    model = MultiOutput(arch, width, outputs)

    def evaluate(moving, fixed, xa, y, xe):
        return model.apply({**moving, **fixed}, xe), _loss(model.apply, moving, fixed, xa, y)

    if isinstance(arch, FeedForward):
        step = lambda moving, fixed, xa, y: _step(model.apply, moving, fixed, xa, y, lr)   # noqa: E731
    else:
        step = resnet_step(model, names, lr)
    return (jax.jit(lambda key, xa: _split(model.init(key, xa.shape[1], dtype), names)),
            jax.jit(step, donate_argnums=0), jax.jit(evaluate),
            jax.jit(lambda moving, fixed, x: model.apply({**moving, **fixed}, x)))


@functools.lru_cache(maxsize=8)
def _compiled(arch, width, outputs, names, lr, steps, dtype, centred):
    """One jitted trainer per setting, so that batches of seeds reuse its compilation."""
    model = MultiOutput(arch, width, outputs)

    def run(keys, xa, y, xe):
        def one(key):
            params = model.init(key, xa.shape[1], dtype)
            yk = y + model.apply(params, xa) if centred else y
            return _descend(model.apply, params, names, xa, yk, xe, lr, steps)
        return jax.lax.map(one, keys)

    return jax.jit(run)
