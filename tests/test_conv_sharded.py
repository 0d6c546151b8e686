"""reskernel.core.conv_sharded: conv kernels with their blocks dealt over devices and processes
equal conv_kernel's bit for bit (each block is the same program on the same inputs), on every
process, for x2 = None (blocks i <= j, mirrored) and x2 given; processes that pass different
images are refused. Runs tests/conv_sharded_worker.py in subprocesses (device counts are fixed
when JAX starts; several processes meet through jax.distributed on localhost)."""
import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).resolve().parent / "conv_sharded_worker.py"


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _run(tmp, processes, devices, **extra):
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, str(WORKER),
                               json.dumps(dict(processes=processes, process_id=pid, devices=devices, port=port,
                                               out=str(tmp), **extra))],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for pid in range(processes)]
    for p in procs:
        try:
            log, _ = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("a conv worker did not finish within 240 s")
        assert p.returncode == 0, log[-3000:]
    return [dict(np.load(tmp / f"conv_{pid}.npz")) for pid in range(processes)]


def _check_equal(out):
    tags = [k[:-len("_nngp")] for k in out if k.endswith("_nngp") and "_ref_" not in k and k != "store_nngp"]
    assert len(tags) == 4
    for tag in tags:
        for kernel in ("nngp", "ntk"):
            got, ref = out[f"{tag}_{kernel}"], out[f"{tag}_ref_{kernel}"]
            assert got.shape == ref.shape and np.all(np.isfinite(ref))
            np.testing.assert_array_equal(got, ref, err_msg=f"{tag} {kernel}")


def test_three_devices_one_process(tmp_path):
    (out,) = _run(tmp_path, processes=1, devices=3)
    _check_equal(out)
    np.testing.assert_array_equal(out["placed_on"], [2, 2])   # a block dealt to device 2 runs there


def test_four_processes(tmp_path):
    outs = _run(tmp_path, processes=4, devices=1, mismatch=True, store=True)
    for pid, out in enumerate(outs):
        _check_equal(out)
        # the store: row blocks 0-2, 3-5, 6 to processes 0, 1, 2 (none to 3); a rerun computes nothing
        mine = int(pid < 3)
        np.testing.assert_array_equal(out["store_counts"], [mine, 0, 0, mine])
        for kernel in ("nngp", "ntk"):   # row blocks against every column: equal to rounding
            ref = out[f"resnet_gap_sym_ref_{kernel}"]
            np.testing.assert_allclose(out[f"store_{kernel}"], ref, rtol=1e-13, atol=1e-13 * np.abs(ref).max())
        assert "x1" in str(out["mismatch_error"]) or "inputs" in str(out["mismatch_error"])
    np.testing.assert_array_equal(outs[0]["resnet_gap_sym_ntk"], outs[1]["resnet_gap_sym_ntk"])


def test_mesh_type_checked():
    import reskernel as rk
    from reskernel.core.conv_sharded import sharded_conv_kernel

    with pytest.raises(TypeError, match="mesh"):
        sharded_conv_kernel(rk.ConvNet(depth=1), np.ones((2, 3, 3, 1)), mesh="cpu")
