"""Times neural-tangents' analytic conv kernels; runs in the pinned environment (jax 0.5.3,
neural-tangents 0.6.5) and imports no reskernel.

usage: python nt_conv_worker.py TASK.json
TASK: {"kind": "convnet"|"convresnet", "depth", "readout": "flatten"|"gap", "n", "repeats",
       "batch": 0 (one call on all n images) or a batch size (nt.batch; it must divide n),
       "mem_limit_gb": caps the address space (RLIMIT_AS) so that running out of memory is an
       error instead of the OOM killer, "gamma" (convresnet)}
The images are bench_conv.images(n) (the same generator as reskernel's side). The net is
tests/nt_reference/conv_compute.stax_conv, whose kernels equal reskernel's ConvNet /
ConvResNet with trained="all" (docs/conventions.md). Prints one JSON line: cold (first call,
compilation included), warm (min over repeats), peak_rss_mb, corner (the kernel's [:4, :4]),
or "error" with the exception's last line.
"""
import json
import resource
import sys
import time
from pathlib import Path

import jax
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "nt_reference"))
from conv_compute import stax_conv  # noqa: E402


def images(n, seed=0):
    """(n, 32, 32, 3) float32 standard normal images; bench_conv.images is the same."""
    return np.random.default_rng(seed).standard_normal((n, 32, 32, 3)).astype(np.float32)


def main(task_path):
    task = json.load(open(task_path))
    if task.get("mem_limit_gb"):
        limit = int(task["mem_limit_gb"] * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import neural_tangents as nt
    depth = task["depth"]
    scales = [depth ** -task.get("gamma", 0.5)] * depth if task["kind"] == "convresnet" else []
    _, _, kernel_fn = stax_conv(task["kind"], depth, scales, 3, task["readout"], "SAME", 512, 3, ["Relu"],
                                2.0, 0.0, 1.0, 1.0)
    fn = (nt.batch(kernel_fn, batch_size=task["batch"], store_on_device=False) if task.get("batch")
          else jax.jit(kernel_fn, static_argnames="get"))
    x = images(task["n"])
    out = {"jax": jax.__version__, "neural_tangents": nt.__version__, "devices": [str(d) for d in jax.devices()]}
    try:
        times = []
        for _ in range(1 + task["repeats"]):
            t0 = time.perf_counter()
            k = np.asarray(jax.block_until_ready(fn(x, None, "ntk")))
            times.append(time.perf_counter() - t0)
            print(json.dumps({"call": len(times) - 1, "seconds": times[-1]}), flush=True)
        out.update(cold=times[0], warm=min(times[1:]) if times[1:] else None, corner=k[:4, :4].tolist())
    except Exception as e:  # noqa: BLE001 (out of memory is the result being measured)
        out["error"] = (str(e).strip().splitlines() or [type(e).__name__])[-1][:500]
        out["error_type"] = type(e).__name__
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
