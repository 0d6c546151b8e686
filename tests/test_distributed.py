"""Kernels across local processes (jax.distributed over localhost, JAX's CPU collectives).

Each launch starts processes of tests/distributed_worker.py, one CPU device each, n = 2,000,
d = 20, ResNet depth 10 (float64 by the recursion; float32 by the tables, with two nearly
parallel pairs of rows that the tables' pass refines in float64, in different processes).
One launch of 2 processes (process start-up is most of the cost) does everything in turn: both
dtypes, CG over the sharded kernel, the disagreement errors, then the disk store, in which
process 1 SIGKILLs itself after its first block; the rest is resumed here, in one process. (A
second launch, of 4 processes, repeated the float64 kernels, CG and the store: 42 of the file's
112 s at load 2-4, for no path the 2 processes do not take; tests/test_conv_sharded.py launches
4 processes, for conv kernels and their store.)
Equalities are bit for bit where the same per-device program runs on the same inputs (the
one-process reference over as many devices, blocked_kernel with the store's block), and to
rounding against reskernel.kernel, whose tiles differ. Every subprocess has a timeout, so a
hung collective fails the test instead of hanging it.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import reskernel as rk
from reskernel.core import distributed

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "distributed_worker.py"
sys.path.insert(0, str(WORKER.parent))
import distributed_worker as W  # noqa: E402  (its inputs; importing it starts no process)

TIMEOUT = 150
PROCESSES = 2
DTYPES = ["float64", "float32"]   # float32: the tables, rows refined across processes


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(tmp, mode, processes, *, wait_for=None, **extra):
    """Start `processes` workers; wait for all (or, with wait_for, for that one, then kill the rest,
    as a cluster launcher ends a job whose task died). Returns the return codes."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("JAX_ENABLE_X64", None)
    port = _free_port()
    procs, logs = [], []
    for pid in range(processes):
        args = dict(mode=mode, port=port, processes=processes, process_id=pid, out=str(tmp), **extra)
        log = open(tmp / f"log_{mode}_{pid}.txt", "w")
        logs.append(log)
        procs.append(subprocess.Popen([sys.executable, str(WORKER), json.dumps(args)], stdout=log,
                                      stderr=subprocess.STDOUT, env=env))
    try:
        for i, p in enumerate(procs):
            if wait_for is None or i == wait_for:
                p.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{mode} workers still running after {TIMEOUT} s (a hung collective?)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait(timeout=30)
        for log in logs:
            log.close()
    return [p.returncode for p in procs]


def _log(tmp, mode, pid):
    return (tmp / f"log_{mode}_{pid}.txt").read_text()[-3000:]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One process over PROCESSES CPU devices: sharded_kernel over all of them."""
    tmp = tmp_path_factory.mktemp("reference")
    codes = _launch(tmp, "reference", 1, devices=PROCESSES, dtypes={str(PROCESSES): DTYPES})
    assert codes == [0], _log(tmp, "reference", 0)
    return dict(np.load(tmp / "reference_0.npz"))


@pytest.fixture(scope="module")
def blocked64():
    with rk.precision.enable_x64():
        return rk.blocked_kernel(W.ARCH, W.inputs(np.float64), block=W.BLOCK)


def test_processes_compute_the_one_process_kernel(tmp_path, reference, blocked64):
    # then the store, in which process 1 is killed after its first block (process 0 is then
    # killed, as a launcher ends the job)
    folder = tmp_path / "store"
    processes = PROCESSES
    codes = _launch(tmp_path, "kernels", processes, folder=str(folder), dtypes=DTYPES, mismatch=True, store=True,
                    cg=True, die_after_first=1, wait_for=1)
    assert codes[1] == -signal.SIGKILL, _log(tmp_path, "kernels", 1)
    # blocked_kernel (blocks of 250, computed here) is the "to rounding" reference: its tiles differ
    # from the sharded ones (tests/test_blocked.py checks it against reskernel.kernel)
    direct = blocked64
    per = W.N // processes
    for pid in range(processes):
        got = np.load(tmp_path / f"kernels_{pid}.npz")
        for dtype in DTYPES:
            assert got[f"{dtype}_rows"].tolist() == [pid * per]          # each process held its own rows
            for name in ("nngp", "ntk"):
                np.testing.assert_array_equal(got[f"{dtype}_{name}"], reference[f"{dtype}_{name}_{processes}"])
        scale = np.abs(direct.ntk).max()
        assert np.abs(got["float64_ntk"] - direct.ntk).max() <= 1e-12 * scale
        assert np.abs(got["float64_nngp"] - direct.nngp).max() <= 1e-12 * np.abs(direct.nngp).max()
        # float32 tables: within the end-to-end bound (TOL + amplification x rounding) of float64
        assert np.abs(got["float32_ntk"] - direct.ntk).max() <= 2e-5 * scale
    # CG over the sharded kernel (ShardedRows): every process the same iterates; the direct solve
    a = direct.ntk + W.noise(direct.ntk) * np.eye(W.N)
    x = np.linalg.solve(a, W.rhs())
    sols = [np.load(tmp_path / f"kernels_{pid}.npz")["cg_solution"] for pid in range(processes)]
    for s in sols[1:]:
        np.testing.assert_array_equal(s, sols[0])
    assert np.linalg.norm(sols[0] - x) <= 1e-7 * np.linalg.norm(x)
    _check_mismatch_errors(tmp_path)
    _check_resume(folder, blocked64)


def _check_mismatch_errors(tmp):
    for pid in (0, 1):
        msg = json.loads((tmp / f"kernels_{pid}.json").read_text())
        assert "processes disagree on inputs:" in msg["inputs"] and "[1]" in msg["inputs"], msg
        assert "processes disagree on inputs, shapes" in msg["shapes"], msg
        assert "processes disagree on arch:" in msg["arch"] and "ResNet" in msg["arch"], msg
        assert "processes disagree on inputs" in msg["store"], msg


def _check_resume(folder, blocked64):
    """The store left by 2 processes, process 1 killed after its first block (block 1; block 3 its
    second, which process 0 never computes)."""
    missing = distributed.missing_blocks(folder)
    b = W.BLOCK
    assert (3 * b, 4 * b) in missing and (b, 2 * b) not in missing, missing
    with pytest.raises(FileNotFoundError, match="missing"):
        distributed.read_kernel(folder)
    # a rerun with one process (this one: no jax.distributed) computes only what is missing
    with rk.precision.enable_x64():
        w = distributed.write_kernel(folder, W.ARCH, W.inputs(np.float64), block=W.BLOCK)
    assert sorted(w.computed) == sorted(missing)
    assert len(w.computed) + len(w.skipped) == len(distributed.row_blocks(W.N, W.BLOCK))
    # every block, whichever process wrote it, is blocked_kernel's bit for bit
    stored = distributed.read_kernel(folder)
    np.testing.assert_array_equal(stored.ntk, blocked64.ntk)
    np.testing.assert_array_equal(stored.nngp, blocked64.nngp)


def test_two_runs_writing_one_folder(tmp_path):
    x = W.inputs(np.float32)[:600]
    arch = rk.FeedForward(5)
    ref = rk.blocked_kernel(arch, x, block=128, get="ntk")
    errors = []

    def run():
        try:
            distributed.write_kernel(tmp_path, arch, x, block=128, get="ntk")
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=TIMEOUT)
    assert not errors
    np.testing.assert_array_equal(distributed.read_kernel(tmp_path), ref)
    assert sorted(p.name for p in tmp_path.iterdir())[-1] == "ntk_000000512_000000600.npy"
    assert not list(tmp_path.glob(".*"))                     # no temporary file left behind
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["n1"] == 600 and manifest["kernels"] == ["ntk"] and manifest["dtype"] == "float32"
    assert np.load(tmp_path / "ntk_000000128_000000256.npy").shape == (128, 600)
    with pytest.raises(ValueError, match="different kernel"):
        distributed.write_kernel(tmp_path, rk.FeedForward(6), x, block=128, get="ntk")
    with pytest.raises(ValueError, match="different kernel"):
        distributed.write_kernel(tmp_path, arch, x + 1, block=128, get="ntk")


def test_row_block_and_store_validate(tmp_path):
    x = W.inputs(np.float32)[:300]
    from reskernel.core.blocked import row_block
    with pytest.raises(ValueError, match="rows"):
        row_block(rk.FeedForward(3), x, rows=(10, 138), block=128)
    with pytest.raises(TypeError, match="block"):
        distributed.write_kernel(tmp_path, rk.FeedForward(3), x, block=1.5)
    with pytest.raises(FileNotFoundError, match="manifest"):
        distributed.read_kernel(tmp_path / "nothing")
    with pytest.raises(TypeError, match="jax.Array"):
        distributed.gather(np.zeros(3))
    # all depths, a rectangular kernel: row blocks of (L, rows, n2)
    k = row_block(rk.ResNet(4), x, x[:50], rows=(256, 300), block=128, all_depths=True, get="nngp")
    ref = rk.kernel(rk.ResNet(4), x[256:], x[:50], all_depths=True, get="nngp")
    assert k[0].shape == (4, 44, 50)
    assert np.abs(k[0] - np.asarray(ref)).max() <= 1e-5 * np.abs(ref).max()


def test_sharded_rows_operator_in_one_process(x64):
    # one process, one device: the operator's products, rows and diagonal against NumPy on the same
    # kernel, and cg_solve through it against the direct float64 solve
    from reskernel.inference.cg import cg_solve
    x = W.inputs(np.float64)[:400]
    k = rk.sharded_kernel(rk.FeedForward(4), x, get="ntk")
    kn = np.asarray(k)
    op = distributed.ShardedRows(k)
    v = np.random.default_rng(2).normal(size=(400, 3))
    assert op.shape == (400, 400) and op.dtype == np.float64
    np.testing.assert_allclose(op.matmul(v), kn @ v, rtol=1e-12, atol=1e-12 * np.abs(kn).max())
    np.testing.assert_array_equal(op.rows(np.array([5, 17])), kn[[5, 17]])
    np.testing.assert_array_equal(op.diagonal(), np.diagonal(kn))
    noise = 1e-3 * np.mean(np.diagonal(kn))
    res = cg_solve(op, v, noise=noise, tol=1e-11, rank=30)
    ref = np.linalg.solve(kn + noise * np.eye(400), v)
    assert res.converged and np.linalg.norm(res.solution - ref) <= 1e-8 * np.linalg.norm(ref)
    with pytest.raises(TypeError, match="jax.Array"):
        distributed.ShardedRows(kn)
