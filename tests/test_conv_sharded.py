"""reskernel.core.conv_sharded: conv kernels with their blocks dealt over devices and processes
equal conv_kernel's bit for bit (each block is the same program on the same inputs), on every
process, for x2 = None (blocks i <= j, mirrored) and x2 given; processes that pass different
images are refused. Runs tests/conv_sharded_worker.py in subprocesses (device counts are fixed
when JAX starts; several processes meet through jax.distributed on localhost).

Cost: each subprocess start (python, the jax import, the distributed connect) and each compiled
block program (one per case, block shape and device) takes seconds, so conv_kernel's references
are computed once, here (while the workers start), not in every worker; x2 given uses the block
shape of x2 = None (one program per case and device); the 3-device launch runs one case (the
other, all depths and every layer trained, runs in the 4-process launch, where placing the
blocks is the same code).
"""
import functools
import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import conv_sharded_worker as W  # noqa: E402  (its cases and inputs; importing it starts no process)

WORKER = Path(W.__file__)


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@functools.lru_cache(maxsize=None)
def _references():
    """conv_kernel of every case and of the public call, in this process (float64)."""
    from reskernel.core.conv import conv_kernel
    from reskernel.precision import enable_x64

    with enable_x64():
        return W.kernels(conv_kernel, tuple(W.CASES), public_fn=conv_kernel)


def _run(tmp, processes, devices, **extra):
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, str(WORKER),
                               json.dumps(dict(processes=processes, process_id=pid, devices=devices, port=port,
                                               out=str(tmp), **extra))],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for pid in range(processes)]
    try:
        ref = _references()   # here while the workers import jax
    except BaseException:
        for p in procs:
            p.kill()
        raise
    for p in procs:
        try:
            log, _ = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("a conv worker did not finish within 240 s")
        assert p.returncode == 0, log[-3000:]
    return [dict(np.load(tmp / f"conv_{pid}.npz")) for pid in range(processes)], ref


def _check_equal(out, ref, cases, public):
    keys = [f"{c}_{t}_{k}" for c in cases for t in ("sym", "cross") for k in ("nngp", "ntk")]
    keys += ["public_nngp", "public_ntk"] if public else []
    assert set(keys) <= set(out) and set(keys) <= set(ref)
    assert not public or "public_ntk" in out
    for key in keys:
        got, want = out[key], ref[key]
        assert got.shape == want.shape and np.all(np.isfinite(want)) and np.abs(want).max() > 0
        np.testing.assert_array_equal(got, want, err_msg=key)


def test_three_devices_one_process(tmp_path):
    (out,), ref = _run(tmp_path, processes=1, devices=3, cases=["resnet_gap"])
    _check_equal(out, ref, ["resnet_gap"], public=False)
    np.testing.assert_array_equal(out["placed_on"], [2, 2])   # a block dealt to device 2 runs there


@functools.lru_cache(maxsize=None)
def _dense_reference():
    import reskernel as rk
    from reskernel.precision import enable_x64

    with enable_x64():
        return tuple(np.asarray(a) for a in rk.kernel(W.DENSE, W.dense_inputs()))


def test_four_processes(tmp_path):
    """Conv kernels and a dense kernel of 2,000 points over 4 processes (one CPU device each)."""
    outs, ref = _run(tmp_path, processes=4, devices=1, cases=list(W.CASES), public=True, mismatch=True, store=True,
                     dense=True)
    dense = _dense_reference()
    for pid, out in enumerate(outs):
        # each process computed its own 500 rows; the gathered kernel equals the one-process
        # kernel to rounding (another row tiling: the Gram's sums may round differently)
        np.testing.assert_array_equal(out["dense_rows"], [500 * pid])
        for got, want in zip((out["dense_nngp"], out["dense_ntk"]), dense):
            assert got.shape == (2000, 2000) and np.isfinite(got).all()
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13 * np.abs(want).max())
    for pid, out in enumerate(outs):
        _check_equal(out, ref, list(W.CASES), public=True)
        # the store: row blocks 0-2, 3-5, 6 to processes 0, 1, 2 (none to 3); a rerun computes nothing
        mine = int(pid < 3)
        np.testing.assert_array_equal(out["store_counts"], [mine, 0, 0, mine])
        for kernel in ("nngp", "ntk"):   # row blocks against every column: equal to rounding
            want = ref[f"resnet_gap_sym_{kernel}"]
            np.testing.assert_allclose(out[f"store_{kernel}"], want, rtol=1e-13, atol=1e-13 * np.abs(want).max())
        assert "x1" in str(out["mismatch_error"]) or "inputs" in str(out["mismatch_error"])
    np.testing.assert_array_equal(outs[0]["resnet_gap_sym_ntk"], outs[1]["resnet_gap_sym_ntk"])


def test_mesh_type_checked():
    import reskernel as rk
    from reskernel.core.conv_sharded import sharded_conv_kernel

    with pytest.raises(TypeError, match="mesh"):
        sharded_conv_kernel(rk.ConvNet(depth=1), np.ones((2, 3, 3, 1)), mesh="cpu")
