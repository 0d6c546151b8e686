"""reskernel vs neural-tangents 0.6.5, run in the pinned environment .venv-nt.

Documented rescaling (docs/conventions.md): for inputs of dimension d,
reskernel(x) = d * neural_tangents(x), for the NNGP and for the NTK with every
layer trained, analytic and empirical (same parameters), because our net at x
is stax's net at sqrt(d) x and ReLU nets without biases are positively homogeneous.

Any activation and variances (docs/conventions.md, the mapping table): reskernel's kernels
equal, without rescaling, those of the stax net whose first Dense has W_std = sqrt(in_var d)
(tests/nt_reference/compute.py, `stax_mapped`), for every closed-form activation stax and
reskernel share; tanh against stax.ElementwiseNumerical, within that layer's own quadrature error.
"""
import fcntl
import itertools
import json
import os
import subprocess
from pathlib import Path

import jax
import numpy as np
import pytest

import reskernel as rk

ROOT = Path(__file__).resolve().parents[1]
NT_PYTHON = Path(os.environ.get("RESKERNEL_NT_PYTHON", ROOT / ".venv-nt" / "bin" / "python"))

CASES = [
    ("ff1", rk.FeedForward(1)), ("ff3", rk.FeedForward(3)), ("ff20", rk.FeedForward(20)),
    ("res1", rk.ResNet(1, alpha=1.0)), ("res4g05", rk.ResNet(4, gamma=0.5)),
    ("res20g1", rk.ResNet(20, gamma=1.0)), ("res10a03", rk.ResNet(10, alpha=0.3)),
    ("res5eta", rk.ResNet(5, scales=[0.7**l for l in range(1, 6)])),
]
EMPIRICAL_WIDTH = 24
# neural-tangents' empirical NTK implementations run per case (1: Jacobian contraction, 2: NTK-vector
# products, 3: structured derivatives): all three at depths <= 10, where they are checked to agree
# with each other and with reskernel; at depth 20 implementation 1 alone (2 and 3 cost ~2/3 of
# the dense reference's time there, for the same comparison again at a larger depth).
NT_IMPLS = {"ff20": (1,), "res20g1": (1,)}

# reskernel's activation and the stax layer computing the same function, [name, *args].
ACTIVATIONS = [
    ("relu", "relu", ["Relu"]),
    ("leaky0.2", rk.activations.leaky_relu(0.2), ["LeakyRelu", 0.2]),
    ("abrelu", rk.activations.ABRelu(-0.5, 1.5), ["ABRelu", -0.5, 1.5]),
    ("abs", "abs", ["Abs"]),
    ("erf", "erf", ["Erf"]),
    ("erf_abc", rk.activations.Erf(1.3, 0.7, 0.2), ["Erf", 1.3, 0.7, 0.2]),
    ("gelu", "gelu", ["Gelu"]),
    ("sin", "sin", ["Sin"]),
    ("cos", "cos", ["Cos"]),
    ("sin_abc", rk.activations.Sin(1.2, 0.8, 0.3), ["Sin", 1.2, 0.8, 0.3]),
    ("identity", "identity", ["Identity"]),
]
MAPPED_DIM = 6
# Variances: with biases ("b", depths 1, 3, 10), without ("nob", depth 3; b_std=None in stax),
# and Lee et al.'s (sigma_w^2, sigma_b^2) = (1.5, 0.05): stax's W_std = sigma_w in every layer.
VARIANCES = {
    "b": ({"w_var": 1.7, "b_var": 0.3, "in_var": 0.4},
          {"gamma": 0.5, "w_var": 1.7, "b_var": 0.3, "in_var": 0.4, "out_var": 1.3}),
    "nob": ({"w_var": 1.3, "in_var": 2.5}, {"alpha": 0.6, "w_var": 1.2, "in_var": 2.5, "out_var": 0.7}),
    "lee": ({"w_var": 1.5, "b_var": 0.05, "in_var": 1.5 / MAPPED_DIM}, None),
}
# Depth 10 (with biases) for one activation of each of reskernel's dual formulas, at its most
# general parameters (ABRelu: relu and abrelu(-0.5, 1.5); Erf: erf_abc; Gelu; Sin: sin_abc): the
# others (leaky, abs, erf, sin, cos, identity) run the same formula with other constants, checked
# at depths 1 and 3 with and without biases. A depth-10 ResNet is the costliest stax case (~3% of
# the reference's time each, plus a reskernel compilation per case: neural-tangents traces the
# finite net with jax.eval_shape at every layer and combinator to propagate shapes).
DEEP = ("relu", "abrelu", "erf_abc", "gelu", "sin_abc")
MAPPED = [(f"{a}-{kind}{depth}-{v}", arch(depth, **VARIANCES[v][i], activation=act), layer)
          for a, act, layer in ACTIVATIONS
          for v, depths in (("b", (1, 3, 10) if a in DEEP else (1, 3)), ("nob", (3,)), ("lee", (3,)))
          for i, (kind, arch) in enumerate((("ff", rk.FeedForward), ("res", rk.ResNet)))
          if VARIANCES[v][i] is not None for depth in depths]
# tanh: stax.ElementwiseNumerical at these quadrature degrees (its error falls ~30x per doubling).
TANH_DEGS = (100, 200, 400)
TANH = [(f"tanh-{kind}{depth}", arch(depth, **VARIANCES["b"][i], activation="tanh"))
        for i, (kind, arch) in enumerate((("ff", rk.FeedForward), ("res", rk.ResNet))) for depth in (1, 3, 10)]


def _case(name, arch, **extra):
    return {"name": name, "kind": "ffnet" if isinstance(arch, rk.FeedForward) else "resnet", "depth": arch.depth,
            "scales": list(arch.branch_scales) if isinstance(arch, rk.ResNet) else [], "width": EMPIRICAL_WIDTH,
            **extra}


def _session_dir(tmp_path_factory, name):
    """A folder of this test session: under pytest-xdist the workers' base temp folders share
    the session's as parent, so that neural-tangents runs once, in the first worker to ask."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    (base / name).mkdir(exist_ok=True)
    return base / name


# Runs tests/nt_reference/compute.py with neural-tangents' TensorFlow interop (nt.experimental:
# empirical_ntk_fn_tf, imported by neural_tangents/__init__ and importing TensorFlow) replaced by an
# empty module: the reference uses stax and empirical_ntk_fn only, and TensorFlow's import was ~80%
# of neural-tangents' (measured 73 s against 14-17 s at load 4-7).
_WITHOUT_TF = ("import os, runpy, sys, types; "
               "sys.modules['neural_tangents.experimental'] = types.ModuleType('neural_tangents.experimental'); "
               "sys.argv = sys.argv[1:]; sys.path.insert(0, os.path.dirname(sys.argv[0])); "
               "runpy.run_path(sys.argv[0], run_name='__main__')")


def _run_nt(tmp, cases, inputs):
    """neural-tangents' outputs for `cases` (tests/nt_reference/compute.py, in .venv-nt), computed
    once per folder `tmp` (a lock makes other processes wait for them and read them). `inputs`:
    {group: (x1, x2)}, a case's group named by its "inputs"."""
    if not NT_PYTHON.exists():
        if os.environ.get("RESKERNEL_NT") == "off":
            pytest.skip("RESKERNEL_NT=off: neural-tangents reference explicitly disabled")
        pytest.fail(f"the pinned reference environment is missing ({NT_PYTHON}); build it with `make nt-env`")
    arrays = {f"{g}/{k}": x for g, pair in inputs.items() for k, x in zip(("x1", "x2"), pair)}
    with open(tmp / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (tmp / "out.npz").exists():
            np.savez(tmp / "inputs.npz", **arrays)
            (tmp / "cases.json").write_text(json.dumps(cases))
            env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_ENABLE_X64")}
            env["TF_CPP_MIN_LOG_LEVEL"] = "3"
            script = ROOT / "tests" / "nt_reference" / "compute.py"
            proc = subprocess.run([str(NT_PYTHON), "-c", _WITHOUT_TF, str(script), str(tmp / "cases.json"),
                                   str(tmp / "inputs.npz"), str(tmp / "partial.npz")],
                                  capture_output=True, text=True, env=env, timeout=900)
            assert proc.returncode == 0, proc.stderr[-4000:]
            os.replace(tmp / "partial.npz", tmp / "out.npz")
        data = np.load(tmp / "inputs.npz")
        assert sorted(data.files) == sorted(arrays)
        assert all(np.array_equal(data[k], x) for k, x in arrays.items())
        out = dict(np.load(tmp / "out.npz"))
    assert str(out["nt_version"]) == "0.6.5" and str(out["jax_version"]) == "0.5.3"
    return out


def dense_inputs():
    rng = np.random.default_rng(0)
    x1 = rng.normal(size=(5, 6)) * rng.uniform(0.5, 2.0, size=(5, 1))
    x2 = np.concatenate([x1[:2], -x1[2:3], rng.normal(size=(2, 6))])
    return x1, x2


def dense_cases():
    """compute.py's cases for CASES: analytic kernels, and empirical NTKs at stax's parameters."""
    return [_case(n, a, seed=i, impls=list(NT_IMPLS.get(n, (1, 2, 3)))) for i, (n, a) in enumerate(CASES)]


_NT = {}


def nt_reference(tmp_path_factory):
    """({group: (x1, x2)}, neural-tangents' outputs) for every case of this file (groups "dense"
    and "mapped") and of test_reference_nt_conv.py ("conv"): one run of compute.py per test
    session (one start-up of jax 0.5.3 and neural-tangents, and one warm-up of its eager ops,
    instead of three), read once per process."""
    if "out" not in _NT:
        import test_reference_nt_conv as conv

        inputs = {"dense": dense_inputs(), "mapped": mapped_inputs(), "conv": conv.images()}
        cases = [{**c, "inputs": g} for g, group in (("dense", dense_cases()), ("mapped", mapped_cases()),
                                                     ("conv", conv.nt_cases())) for c in group]
        assert len({c["name"] for c in cases}) == len(cases)
        _NT["out"] = inputs, _run_nt(_session_dir(tmp_path_factory, "nt"), cases, inputs)
    return _NT["out"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    inputs, out = nt_reference(tmp_path_factory)
    return *inputs["dense"], out


def mapped_inputs():
    """Inputs of norms 0.25 to 3 (so that tanh's pre-activation variances stay within the range
    of its default tol, q < 17), with an identical, an antipodal and a parallel pair."""
    rng = np.random.default_rng(1)
    u = rng.normal(size=(7, MAPPED_DIM))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    x1 = u[:5] * np.array([[0.25], [0.5], [1.0], [2.0], [3.0]])
    x2 = np.concatenate([x1[:1], -x1[2:3], 0.5 * x1[3:4], 1.5 * u[5:6], 0.8 * u[6:7]])
    return x1, x2


def mapped_cases():
    """compute.py's cases for MAPPED and TANH."""
    def variances(a):
        return {"w_var": a.w_var, "b_var": a.b_var, "in_var": a.in_var, "out_var": getattr(a, "out_var", 1.0)}

    cases = [_case(n, a, layer=layer, **variances(a)) for n, a, layer in MAPPED]
    return cases + [_case(n, a, layer=["ElementwiseNumerical", "tanh"], degs=list(TANH_DEGS), **variances(a))
                    for n, a in TANH]


@pytest.fixture(scope="module")
def mapped_reference(tmp_path_factory):
    inputs, out = nt_reference(tmp_path_factory)
    return *inputs["mapped"], out


def _rel(a, b):
    """max |a - b| relative to b's largest entry."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def assert_kernels_match(k, out, name, rounding):
    """k's NNGP and NTK against neural-tangents' out["NAME/nngp"], out["NAME/ntk"]: within 1e-6 of
    the largest entry (the agreement the docs state) and within `rounding` (what float64 gives)."""
    for get in ("nngp", "ntk"):
        err = _rel(getattr(k, get), out[f"{name}/{get}"])
        assert err <= 1e-6, f"{get}: {err:.3g}"
        assert err <= rounding, f"{get}: {err:.3g} > {rounding:g} (float64 agreement)"


def _params_from_stax(arch, leaves):
    """stax stores Dense weights (fan_in, fan_out); reskernel stores (out, in)."""
    w = [np.asarray(l).T for l in leaves]
    if isinstance(arch, rk.FeedForward):
        hidden = np.stack(w[1:-1]) if len(w) > 2 else np.zeros((0,) + w[0].shape[:1] * 2)
        return {"input": w[0], "hidden": hidden, "readout": w[-1][0]}
    return {"embed": w[0], "W": np.stack(w[1:-1:2]), "V": np.stack(w[2:-1:2]), "readout": w[-1][0]}


@pytest.mark.reference
@pytest.mark.parametrize("name, arch", CASES)
def test_analytic_matches_neural_tangents(x64, reference, name, arch):
    x1, x2, out = reference
    d = x1.shape[1]
    k = rk.kernel(arch, x1, x2, trained="all")
    np.testing.assert_allclose(k.nngp, d * out[f"{name}/nngp"], rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(k.ntk, d * out[f"{name}/ntk"], rtol=1e-6, atol=1e-12)
    # in float64 the agreement is in fact at rounding level
    np.testing.assert_allclose(k.ntk, d * out[f"{name}/ntk"], rtol=1e-10, atol=1e-12)


@pytest.mark.reference
@pytest.mark.parametrize("name, arch", CASES)
def test_empirical_matches_neural_tangents(x64, reference, name, arch):
    x1, x2, out = reference
    d = x1.shape[1]
    leaves = [out[f"{name}/leaf{i}"] for i in range(int(out[f"{name}/num_leaves"]))]
    net = rk.network(arch, EMPIRICAL_WIDTH)
    params = jax.tree_util.tree_map(np.asarray, _params_from_stax(arch, leaves))
    for method in rk.empirical.METHODS:
        e = rk.empirical_kernel(net, params, x1, x2, trained="all", method=method)
        # neural-tangents' three implementations (3: structured derivatives, run through
        # tests/nt_reference's shim for jax 0.5.3) all give the same kernel.
        for impl in NT_IMPLS.get(name, (1, 2, 3)):
            np.testing.assert_allclose(e.ntk, d * out[f"{name}/empirical_ntk/{impl}"], rtol=1e-6, atol=1e-10)


@pytest.mark.reference
@pytest.mark.parametrize("name, arch, layer", MAPPED, ids=[n for n, _, _ in MAPPED])
def test_mapped_matches_neural_tangents(x64, mapped_reference, name, arch, layer):
    """Closed-form activations, any variances: equal to stax's kernels (no rescaling) to 1e-6
    of the largest entry, in float64 in fact to rounding."""
    x1, x2, out = mapped_reference
    assert_kernels_match(rk.kernel(arch, x1, x2, trained="all"), out, name, 1e-10)  # rounding level, ~1e-15


@pytest.mark.reference
@pytest.mark.parametrize("name, arch", TANH, ids=[n for n, _ in TANH])
def test_tanh_matches_neural_tangents_quadrature(x64, mapped_reference, name, arch):
    """stax.ElementwiseNumerical(tanh, deg) converges to reskernel's tanh kernels (Hermite
    series, truncation bound 1e-12 per layer) as deg doubles, and at the largest degree it
    agrees with them within its own error estimate |nt(deg/2) - nt(deg)|."""
    x1, x2, out = mapped_reference
    k = rk.kernel(arch, x1, x2, trained="all")
    for get in ("nngp", "ntk"):
        nt = [out[f"{name}/{deg}/{get}"] for deg in TANH_DEGS]
        err = [_rel(getattr(k, get), r) for r in nt]
        assert all(e1 > 4 * e2 for e1, e2 in itertools.pairwise(err)), f"{get}: errors {err} at degrees {TANH_DEGS}"
        assert err[-1] <= _rel(nt[-2], nt[-1]), f"{get}: {err[-1]:.3g} > nt's own estimate {_rel(nt[-2], nt[-1]):.3g}"
        assert err[-1] <= 1e-6, f"{get}: {err[-1]:.3g}"
