"""Optimizer factory: per-layer norms for stacked layers, the plain route for
zero-initialized leaves under Fromage, and errors at the boundary."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from reskernel import training as tr
from reskernel.studies.training.fit import logistic_loss
from conftest import assert_close


@pytest.mark.parametrize("name", ["fromage", "lars"])
def test_per_layer_equals_separate_leaves(x64, name):
    rng = np.random.default_rng(0)
    w = jnp.asarray(rng.normal(size=(3, 4, 5)) * np.array([1.0, 10.0, 0.1])[:, None, None])
    g = jnp.asarray(rng.normal(size=(3, 4, 5)))
    tx = tr.optimizer(name, 0.05, layout={"w": "weights"})
    upd, _ = tx.update({"w": g}, tx.init({"w": w}), {"w": w})
    ref = optax.fromage(0.05) if name == "fromage" else optax.lars(0.05)
    sep = {str(i): w[i] for i in range(3)}
    ref_upd, _ = ref.update({str(i): g[i] for i in range(3)}, ref.init(sep), sep)
    assert_close(upd["w"], jnp.stack([ref_upd[str(i)] for i in range(3)]), rtol=1e-12)
    if name == "fromage":  # relative step lr per layer: |dW_l| / |W_l| = lr / sqrt(1 + lr^2) * ...
        new = w + upd["w"]
        ratio = jnp.linalg.norm((new - w).reshape(3, -1), axis=1) / jnp.linalg.norm(w.reshape(3, -1), axis=1)
        assert np.all(np.abs(np.asarray(ratio) - 0.05) < 0.002)


def _fit_manual(spec, tx, params, x, y, steps):
    def loss(p):
        return logistic_loss(spec.apply(p, x), y)

    @jax.jit
    def step(p, s):
        upd, s = tx.update(jax.grad(loss)(p), s, p)
        return optax.apply_updates(p, upd), s

    s = tx.init(params)
    for _ in range(steps):
        params, s = step(params, s)
    return params


def test_fromage_routing_moves_zero_initialized_params():
    spec = tr.ResidualMLP(4, 16, norm="batch", skipinit=0.0)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 8)).astype(np.float32)
    y = np.sign(x[:, 0] + 0.1).astype(np.float32)
    p0 = spec.init_params(jax.random.PRNGKey(0), 8)
    routed = _fit_manual(spec, tr.optimizer("fromage", 0.01, layout=spec.layout()), p0, x, y, 10)
    bare = _fit_manual(spec, optax.fromage(0.01), p0, x, y, 10)
    moved = lambda p, path: float(jnp.abs(p["blocks"][path] - p0["blocks"][path]).max())
    # optax.fromage: a zero leaf moves by lr * min_norm = 1e-8 a step
    for leaf in ("skip", "b1", "shift"):
        assert moved(bare, leaf) < 1e-6
        assert moved(routed, leaf) > 1e-3
    # the weights still get Fromage's relative steps: about lr per layer per step
    rel = jnp.linalg.norm((routed["blocks"]["w1"] - p0["blocks"]["w1"]).reshape(4, -1), axis=1) \
        / jnp.linalg.norm(p0["blocks"]["w1"].reshape(4, -1), axis=1)
    assert np.all((np.asarray(rel) > 0.01) & (np.asarray(rel) < 0.1))


def test_dtype_preserved_and_traces(x64):
    spec = tr.MLP(2, 8)
    p = spec.init_params(jax.random.PRNGKey(0), 3, jnp.float64)
    for name in tr.OPTIMIZERS:
        tx = tr.optimizer(name, 0.1, layout=spec.layout())
        g = jax.tree_util.tree_map(jnp.ones_like, p)
        upd, _ = jax.jit(tx.update)(g, tx.init(p), p)
        assert all(u.dtype == jnp.float64 for u in jax.tree_util.tree_leaves(upd))


def test_optimizer_errors():
    with pytest.raises(ValueError, match="sgd, adam, lars, fromage"):
        tr.optimizer("rmsprop", 0.1)
    with pytest.raises(ValueError, match="learning_rate must be >= 0"):
        tr.optimizer("sgd", -0.1)
    with pytest.raises(ValueError, match="finite"):
        tr.optimizer("adam", float("nan"))
    with pytest.raises(TypeError, match="learning_rate"):
        tr.optimizer("adam", "0.1")
    with pytest.raises(ValueError, match="momentum"):
        tr.optimizer("sgd", 0.1, momentum=1.5)
    with pytest.raises(ValueError, match="plain must be 'sgd' or 'adam'"):
        tr.optimizer("fromage", 0.1, layout={"w": "weight"}, plain="lars")
    with pytest.raises(ValueError, match="unknown role"):
        tr.optimizer("fromage", 0.1, layout={"w": "matrix"})
    x, y = np.ones((4, 3)), np.array([1.0, -1.0, 1.0, -1.0])
    with pytest.raises(ValueError, match="learning_rate must be >= 0"):
        tr.train(tr.MLP(1, 4), x, y, learning_rate=[0.1, -1.0])
    with pytest.raises(ValueError, match="unknown optimizer 'lamb'"):
        tr.train(tr.MLP(1, 4), x, y, optimizer_name="lamb")
    with pytest.raises(ValueError, match=r"\+1/-1"):
        tr.train(tr.MLP(1, 4), x, np.array([0, 1, 0, 1]))
