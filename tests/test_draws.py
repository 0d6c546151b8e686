"""reskernel.nets._draws: stacks of normal draws built one layer at a time equal
jax.random.normal's draws bit for bit, and hold about one layer beside the result."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import reskernel as rk
from reskernel.nets._draws import stacked_normal

SHAPES = [(3, 4, 5), (5, 33), (1, 7, 2), (0, 4, 4), (6, 1)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", [0, 11])
def test_stacked_normal_is_jax_random_normal(shape, seed):
    key = jax.random.PRNGKey(seed)
    want = np.asarray(jax.random.normal(key, shape, jnp.float32))
    assert np.array_equal(np.asarray(stacked_normal(key, shape, jnp.float32)), want)
    assert np.array_equal(np.asarray(jax.jit(lambda k: stacked_normal(k, shape, jnp.float32))(key)), want)


def test_stacked_normal_float64_and_split_keys(x64):
    for key in (jax.random.PRNGKey(3), jax.random.split(jax.random.PRNGKey(3), 4)[2]):
        want = np.asarray(jax.random.normal(key, (4, 6, 7), jnp.float64))
        got = np.asarray(stacked_normal(key, (4, 6, 7), jnp.float64))
        assert got.dtype == np.float64 and np.array_equal(got, want)


def test_stacked_normal_falls_back_where_it_would_differ():
    """Without partitionable threefry, and for a typed key, the draws are jax.random.normal's own."""
    key = jax.random.PRNGKey(5)
    old = jax.config.jax_threefry_partitionable
    try:
        jax.config.update("jax_threefry_partitionable", False)
        want = np.asarray(jax.random.normal(key, (3, 8), jnp.float32))
        assert np.array_equal(np.asarray(stacked_normal(key, (3, 8), jnp.float32)), want)
    finally:
        jax.config.update("jax_threefry_partitionable", old)
    typed = jax.random.key(5)
    assert np.array_equal(np.asarray(stacked_normal(typed, (3, 8), jnp.float32)),
                          np.asarray(jax.random.normal(typed, (3, 8), jnp.float32)))


def test_stacked_normal_memory():
    """XLA's temporary buffers: jax.random.normal of a (20, 128, 128) stack needs ~3x the
    result; the layer-by-layer draw a few layers' worth, also for a whole ResNet's init (XLA's
    memory analysis, no timing)."""
    key = jax.random.PRNGKey(0)
    shape = (20, 128, 128)
    def temp(f):
        mem = jax.jit(f).lower(key).compile().memory_analysis()
        return mem.temp_size_in_bytes / mem.output_size_in_bytes
    assert temp(lambda k: jax.random.normal(k, shape, jnp.float32)) > 1.5
    assert temp(lambda k: stacked_normal(k, shape, jnp.float32)) < 0.5
    # a ResNet's two stacks each start from a buffer of their own (shared zeros cost 0.5 more)
    assert temp(lambda k: rk.network(rk.ResNet(20), 128).init(k, 16, jnp.float32)) < 0.3


def test_network_init_keeps_its_draws():
    """Network.init's stacked weights are still jax.random.normal(k_i, (L, m, m)) of its key split."""
    key = jax.random.PRNGKey(9)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    res = rk.network(rk.ResNet(3, gamma=0.5), 8).init(key, 5, jnp.float32)
    assert np.array_equal(np.asarray(res["W"]), np.asarray(jax.random.normal(k2, (3, 8, 8))))
    assert np.array_equal(np.asarray(res["V"]), np.asarray(jax.random.normal(k3, (3, 8, 8))))
    ff = rk.network(rk.FeedForward(4), 8).init(key, 5, jnp.float32)
    assert np.array_equal(np.asarray(ff["hidden"]), np.asarray(jax.random.normal(k2, (3, 8, 8))))
