"""reskernel vs neural-tangents 0.6.5, run in the pinned environment .venv-nt.

Documented rescaling (docs/conventions.md): for inputs of dimension d,
reskernel(x) = d * neural_tangents(x), for the NNGP and for the NTK with every
layer trained, analytic and empirical (same parameters), because our net at x
is stax's net at sqrt(d) x and ReLU nets without biases are positively homogeneous.
"""
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


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    if not NT_PYTHON.exists():
        if os.environ.get("RESKERNEL_NT") == "off":
            pytest.skip("RESKERNEL_NT=off: neural-tangents reference explicitly disabled")
        pytest.fail(f"the pinned reference environment is missing ({NT_PYTHON}); build it with `make nt-env`")
    tmp = tmp_path_factory.mktemp("nt")
    rng = np.random.default_rng(0)
    x1 = rng.normal(size=(5, 6)) * rng.uniform(0.5, 2.0, size=(5, 1))
    x2 = np.concatenate([x1[:2], -x1[2:3], rng.normal(size=(2, 6))])
    np.savez(tmp / "inputs.npz", x1=x1, x2=x2)
    cases = [{"name": n, "kind": "ffnet" if isinstance(a, rk.FeedForward) else "resnet", "depth": a.depth,
              "scales": list(a.branch_scales) if isinstance(a, rk.ResNet) else [], "width": EMPIRICAL_WIDTH,
              "seed": i} for i, (n, a) in enumerate(CASES)]
    (tmp / "cases.json").write_text(json.dumps(cases))
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_ENABLE_X64")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    proc = subprocess.run([str(NT_PYTHON), str(ROOT / "tests" / "nt_reference" / "compute.py"),
                           str(tmp / "cases.json"), str(tmp / "inputs.npz"), str(tmp / "out.npz")],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = dict(np.load(tmp / "out.npz"))
    assert str(out["nt_version"]) == "0.6.5" and str(out["jax_version"]) == "0.5.3"
    return x1, x2, out


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
        for impl in (1, 2, 3):
            np.testing.assert_allclose(e.ntk, d * out[f"{name}/empirical_ntk/{impl}"], rtol=1e-6, atol=1e-10)
