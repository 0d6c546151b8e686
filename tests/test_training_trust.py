"""Deep relative trust: what holds (the operator-norm function bound, a theorem; its
tightness under dW = eta W), and what the Frobenius-norm bound does and does not
describe for ReLU MLPs at init (measured)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reskernel import training as tr
from conftest import assert_close

DEPTH, WIDTH = 6, 128      # K = 7 weight layers


@pytest.fixture
def setup(x64):
    spec = tr.MLP(DEPTH, WIDTH, bias=False)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 20))
    y = np.where(rng.normal(size=32) > 0, 1.0, -1.0)
    return spec, spec.init_params(jax.random.PRNGKey(1), 20, jnp.float64), x, y


@pytest.mark.parametrize("direction, eta", [("random", 1e-3), ("scale", 0.1), ("gradient", 0.5)])
def test_lipschitz_bound_holds(setup, direction, eta):
    spec, p, x, y = setup
    d = tr.relative_perturbation(spec, p, eta, jax.random.PRNGKey(2), direction=direction, x=x, y=y)
    m = tr.relative_change(spec, p, d, x, y)
    assert_close(m.ratio, np.full(DEPTH + 1, eta), rtol=1e-12)
    change, bound = tr.lipschitz_bound(spec, p, d, x)
    assert np.all(np.asarray(change) <= np.asarray(bound) * (1 + 1e-12))


@pytest.mark.parametrize("eta", [0.01, 0.3])
def test_scaling_perturbation_attains_the_bound(setup, eta):
    """dW_k = eta W_k scales f by (1+eta)^K: the function bound is attained; each layer's
    gradient of sum f scales by (1+eta)^(K-1), below the bound."""
    spec, p, x, _ = setup
    d = tr.relative_perturbation(spec, p, eta, direction="scale")
    m = tr.relative_change(spec, p, d, x)
    K = DEPTH + 1
    assert_close(m.bound, (1 + eta) ** K - 1, rtol=1e-12)
    assert_close(m.function, m.bound, rtol=1e-9)
    assert_close(m.gradient, np.full(K, (1 + eta) ** (K - 1) - 1), rtol=1e-9)


def test_random_perturbation_function_change_below_bound(setup):
    """Measured: independent random directions add up like sqrt(K) eta, below prod(1+eta)-1 ~ K eta."""
    spec, p, x, y = setup
    for eta in (1e-3, 1e-2, 0.1):
        for seed in range(3):
            d = tr.relative_perturbation(spec, p, eta, jax.random.PRNGKey(10 + seed))
            m = tr.relative_change(spec, p, d, x, y)
            assert float(m.function) < 0.7 * float(m.bound)


def test_relu_gradient_breakdown_exceeds_bound_at_small_eta(setup):
    """Measured limitation: ReLU's derivative is a step, so once a relative perturbation eta
    flips units on the batch, a layer's gradient changes by ~ sqrt(eta), not ~ eta. At
    eta = 1e-3 the largest gradient breakdown (~0.11 here) is far above
    prod_k (1 + eta) - 1 = 0.007; from eta = 1e-3 to 1e-2 it grows ~2.6x, not 10x."""
    spec, p, x, y = setup
    for seed in range(2):
        key = jax.random.PRNGKey(3 + seed)
        small, large = (tr.relative_change(spec, p, tr.relative_perturbation(spec, p, eta, key), x, y)
                        for eta in (1e-3, 1e-2))
        assert float(small.gradient.max()) > 5 * float(small.bound)
        assert float(large.gradient.max() / small.gradient.max()) < 5


def test_gradient_aligned_perturbation_breaks_frobenius_trust(setup):
    """Measured: Fromage's own step direction, dW_k = -eta |W_k|_F g_k / |g_k|_F, is low-rank, so
    its operator norm is ~ eta |W_k|_F >> eta |W_k|_op; the function changes by far more than
    prod_k (1 + eta) - 1 (the Frobenius conditions of the theorem fail), while the operator
    norm bound (test_lipschitz_bound_holds) still holds."""
    spec, p, x, y = setup
    d = tr.relative_perturbation(spec, p, 0.01, direction="gradient", x=x, y=y)
    m = tr.relative_change(spec, p, d, x, y)
    assert float(m.function) > 3 * float(m.bound)


def test_weight_layers_order_and_errors(setup):
    spec, p, x, y = setup
    layers = tr.weight_layers(spec, p)
    assert [w.shape for w in layers] == [(WIDTH, 20)] + [(WIDTH, WIDTH)] * (DEPTH - 1) + [(WIDTH,)]
    res = tr.ResidualMLP(3, 8)
    shapes = [w.shape for w in tr.weight_layers(res, res.init_params(jax.random.PRNGKey(0), 5))]
    assert shapes == [(8, 5)] + [(8, 8)] * 6 + [(8,)]
    with pytest.raises(ValueError, match="direction must be one of"):
        tr.relative_perturbation(spec, p, 0.1, jax.random.PRNGKey(0), direction="adversarial")
    with pytest.raises(ValueError, match="eta must be"):
        tr.relative_perturbation(spec, p, -0.1, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="bias=False"):
        tr.lipschitz_bound(tr.MLP(2, 4), p, p, x)
