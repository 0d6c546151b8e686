"""Runs in the pinned environment (jax 0.5.3, neural-tangents 0.6.5); imports no reskernel.

usage: python nt_worker.py TASK.json INPUTS.npz OUT.npz
TASK: {"mode": "analytic", "kind": "ffnet"|"resnet", "depth", "scales", "repeats", "save": bool}
      {"mode": "empirical", "kind", "depth", "scales", "width", "implementations": [1, 2, 3], "repeats"}
      Analytic, a general arch (bench_activations.py): "layer" (compute.py's stax activation, e.g.
      ["Erf"] or ["ElementwiseNumerical", "tanh", deg]) and "w_var", "b_var", "in_var", "out_var":
      the net of compute.py's `stax_mapped`, whose kernels equal reskernel's without rescaling.
      Optional: "mem_limit_gb" (any mode) caps the address space (RLIMIT_AS), so that an
      allocation beyond it fails with XLA's out-of-memory error instead of waking the OOM
      killer; "progress": true (analytic) prints {"call": i, "start": unix time} before each
      call (0 = cold) and {"call": i, "seconds": s} after it, so that a caller which kills the
      process at a time limit knows which calls finished and how long the last one had run.
Prints one JSON line, the last: timings in seconds (cold = first call incl. compilation, warm = min of repeats).
"""
import json
import resource
import sys
import time
import warnings
from pathlib import Path

import jax
import neural_tangents as nt
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "nt_reference"))
from compute import shim_structured_derivatives, stax_mapped, stax_net  # noqa: E402  (shared with the reference tests)

shim_structured_derivatives()  # lets implementation 3 (structured derivatives) run on jax 0.5.3

WIDTH = 512  # analytic kernels do not depend on it


def clock(fn):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    return time.perf_counter() - t0, out


def progress(**fields):
    print(json.dumps(fields), flush=True)


def main(task_path, inputs_path, out_path):
    task = json.load(open(task_path))
    if task.get("mem_limit_gb"):
        limit = int(task["mem_limit_gb"] * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    x = np.load(inputs_path)["x"]
    res = {"jax": jax.__version__, "neural_tangents": nt.__version__, "devices": [str(d) for d in jax.devices()]}
    if task["mode"] == "analytic":
        if "layer" in task:
            # ElementwiseNumerical warns at construction that its accuracy depends on deg
            warnings.filterwarnings("ignore", message="(Numerical Activation Layer|Using JAX autodiff)")
            _, _, kernel_fn = stax_mapped(task["kind"], task["depth"], task["scales"], WIDTH, x.shape[1], task["layer"],
                                          task["w_var"], task["b_var"], task["in_var"], task["out_var"])
        else:
            _, _, kernel_fn = stax_net(task["kind"], task["depth"], task["scales"], WIDTH)
        fn = jax.jit(kernel_fn, static_argnames="get")
        times = []
        for i in range(1 + task["repeats"]):  # call 0 is the cold one
            if task.get("progress"):
                progress(call=i, start=time.time())
            t, k = clock(lambda: fn(x, None, "ntk"))
            if i == 0:
                out = k
            times.append(t)
            if task.get("progress"):
                progress(call=i, seconds=t)
        cold, warm = times[0], times[1:]
        res.update(cold=cold, warm=min(warm), warm_all=warm)
        if task.get("save"):
            np.save(out_path, np.asarray(out))
    else:
        init_fn, apply_fn, _ = stax_net(task["kind"], task["depth"], task["scales"], task["width"])
        _, params = init_fn(jax.random.PRNGKey(0), (-1, x.shape[1]))
        res["implementations"] = {}
        for impl in task["implementations"]:
            fn = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0, implementation=impl))
            try:
                cold, _ = clock(lambda: fn(x, None, params))
                warm = [clock(lambda: fn(x, None, params))[0] for _ in range(task["repeats"])]
                res["implementations"][str(impl)] = {"cold": cold, "warm": min(warm), "warm_all": warm}
            except Exception as e:  # e.g. out of memory for Jacobian contraction at large width
                res["implementations"][str(impl)] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
    print(json.dumps(res))


if __name__ == "__main__":
    main(*sys.argv[1:4])
