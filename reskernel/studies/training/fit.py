"""Training of nets.MLP / nets.ResidualMLP on a two-class problem (labels +1/-1) with
the logistic loss mean_n log(1 + exp(-y_n f(x_n))), jitted with lax.scan over steps and
vmapped over a grid of learning rates (same initialization and batches for each).

Batch norm trains on each minibatch's statistics; the reported training loss uses the
whole training set as the batch, and test predictions use the training set's
statistics (precise BN: no running averages to tune).
"""
from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..._checks import positive_int
from .nets import check_spec
from .optimizers import check_learning_rate, check_name, optimizer

__all__ = ["FitResult", "train", "logistic_loss", "evaluate", "labels_pm1"]


class FitResult(NamedTuple):
    """Outcome of `train`; with a grid of k learning rates every field gains a leading axis k."""

    params: dict
    train_loss: jax.Array        # final loss on the whole training set
    train_accuracy: jax.Array
    test_loss: jax.Array         # NaN without test data
    test_accuracy: jax.Array
    steps: jax.Array             # (n_evals + 1,) steps at which the history was taken
    loss_history: jax.Array      # (..., n_evals + 1) training loss, step 0 first
    accuracy_history: jax.Array


def logistic_loss(f, y):
    """mean_n log(1 + exp(-y_n f_n)) for f, y of shape (n,)."""
    return jnp.mean(jax.nn.softplus(-y * f))


def evaluate(spec, params, x, y, stats=None):
    """(logistic loss, accuracy) of the net on (x, y); BN uses `stats` or x's own."""
    f = spec.apply(params, x, stats)
    return logistic_loss(f, y), jnp.mean((f * y) > 0)


def labels_pm1(y, name="y"):
    """y as a float array of +1/-1 labels, shape (n,)."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must have shape (n,), got {y.shape}")
    if not np.all(np.isin(y, (-1, 1))):
        raise ValueError(f"{name} must hold labels +1/-1, got values {np.unique(y)[:5]}")
    return y


def _data(x, y, name):
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"x_{name} must have shape (n, d) with n >= 1, got {x.shape}")
    y = labels_pm1(y, f"y_{name}")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"x_{name} and y_{name} differ in length: {x.shape[0]} vs {y.shape[0]}")
    return x, y


def train(spec, x_train, y_train, *, optimizer_name: str = "sgd", learning_rate=0.1,
          steps: int = 100, batch_size: Optional[int] = None, key=None, params=None,
          n_evals: int = 10, x_test=None, y_test=None, dtype=jnp.float32,
          **optimizer_kwargs) -> FitResult:
    """Train `spec` from `params` (or a fresh init from `key`) for `steps` steps.

    learning_rate: float >= 0, or a 1-D grid (k,): the runs are vmapped.
    batch_size: None for full-batch gradient descent, else minibatches drawn without
      replacement at each step.
    optimizer_kwargs: passed to optimizers.optimizer (momentum, plain, ...); the
      params' layout is passed for you.
    """
    check_spec(spec)
    check_name(optimizer_name)
    check_learning_rate(learning_rate)
    lr = np.asarray(learning_rate, dtype=np.float64)
    if lr.ndim > 1:
        raise ValueError(f"learning_rate must be a scalar or a 1-D grid, got shape {lr.shape}")
    steps = positive_int("steps", steps)
    n_evals = min(positive_int("n_evals", n_evals), steps)
    x_train, y_train = _data(x_train, y_train, "train")
    n = x_train.shape[0]
    if batch_size is not None:
        batch_size = positive_int("batch_size", batch_size)
        if batch_size > n:
            raise ValueError(f"batch_size must be <= the {n} training examples, got {batch_size}")
    if getattr(spec, "norm", "none") == "batch" and (batch_size or n) < 2:
        raise ValueError("batch norm needs batches of at least 2 examples")
    if (x_test is None) != (y_test is None):
        raise ValueError("give both x_test and y_test, or neither")
    if x_test is not None:
        x_test, y_test = _data(x_test, y_test, "test")
        if x_test.shape[1] != x_train.shape[1]:
            raise ValueError(f"x_test has {x_test.shape[1]} features, x_train {x_train.shape[1]}")
    key = jax.random.PRNGKey(0) if key is None else key
    init_key, batch_key = jax.random.split(key)
    if params is None:
        params = spec.init_params(init_key, x_train.shape[1], dtype)
    opt = dict(optimizer_kwargs, layout=spec.layout())
    optimizer(optimizer_name, 0.1, **opt)  # validate the options before tracing
    opt_static = tuple(sorted((k, _freeze(v)) for k, v in optimizer_kwargs.items()))
    dt = jax.tree_util.tree_leaves(params)[0].dtype
    xs = (x_train.astype(dt), jnp.asarray(y_train, dt))
    ts = None if x_test is None else (x_test.astype(dt), jnp.asarray(y_test, dt))
    static = (spec, optimizer_name, opt_static, steps, batch_size, n_evals)
    lrs = jnp.asarray(lr, dt)
    if lr.ndim == 0:
        return _fit(*static, params, xs, ts, lrs, batch_key)
    return _fit_grid(*static, params, xs, ts, lrs, batch_key)


def _freeze(v):
    return tuple(v) if isinstance(v, list) else v


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5))
def _fit(spec, name, opt_static, steps, batch_size, n_evals, params, train_data, test_data, lr, key):
    x, y = train_data
    n = x.shape[0]
    tx = optimizer(name, lr, layout=spec.layout(), **dict(opt_static))
    state = tx.init(params)

    def loss_fn(p, xb, yb):
        return logistic_loss(spec.apply(p, xb), yb)

    def step(carry, k):
        p, s = carry
        if batch_size is None:
            xb, yb = x, y
        else:
            idx = jax.random.choice(k, n, (batch_size,), replace=False)
            xb, yb = x[idx], y[idx]
        g = jax.grad(loss_fn)(p, xb, yb)
        upd, s = tx.update(g, s, p)
        return (optax.apply_updates(p, upd), s), None

    def chunk(carry, keys):
        carry, _ = jax.lax.scan(step, carry, keys)
        return carry, evaluate(spec, carry[0], x, y)

    chunk_len, extra = divmod(steps, n_evals)
    keys = jax.random.split(key, steps)
    carry = (params, state)
    first = evaluate(spec, params, x, y)
    if extra:
        carry, _ = jax.lax.scan(step, carry, keys[:extra])
    carry, (losses, accs) = jax.lax.scan(chunk, carry, keys[extra:].reshape((n_evals, chunk_len) + keys.shape[1:]))
    p = carry[0]
    train_loss, train_acc = losses[-1], accs[-1]
    if test_data is None:
        test_loss = test_acc = jnp.asarray(jnp.nan, x.dtype)
    else:
        test_loss, test_acc = evaluate(spec, p, *test_data, spec.batch_stats(p, x))
    steps_at = jnp.asarray([0] + [extra + chunk_len * (i + 1) for i in range(n_evals)])
    return FitResult(p, train_loss, train_acc, test_loss, jnp.asarray(test_acc, x.dtype), steps_at,
                     jnp.concatenate([first[0][None], losses]),
                     jnp.concatenate([jnp.asarray(first[1], x.dtype)[None], accs.astype(x.dtype)]))


# Module-level so that repeated calls (seeds, studies) hit the compilation cache.
@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5))
def _fit_grid(spec, name, opt_static, steps, batch_size, n_evals, params, train_data, test_data, lrs, key):
    fit_one = lambda lr: _fit(spec, name, opt_static, steps, batch_size, n_evals, params, train_data, test_data,
                              lr, key)
    return jax.vmap(fit_one)(lrs)
