"""Times reskernel in a fresh process (so the first call includes compilation).

usage: python rk_worker.py TASK.json INPUTS.npz OUT.npy
TASK: {"mode": "analytic", "kind", "depth", "gamma"|"alpha", "all_depths": bool, "trained", "repeats", "save",
       "method": "auto"|"table"|"recursion" (default "auto")}
      {"mode": "empirical", "kind", "depth", "alpha", "width", "repeats"}
      A general arch (bench_activations.py) adds "activation" and "w_var", "b_var", "in_var"
      (and "out_var" for a ResNet); "report_path": true adds "path", the route reskernel's
      kernel took ("table" or "recursion in <dtype>").
Prints one JSON line of timings (cold = first call incl. compilation, warm = min of repeats).
"""
import json
import sys
import time

import jax
import numpy as np

import reskernel as rk


def clock(fn):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    return time.perf_counter() - t0, out


def arch_of(task):
    general = {k: task[k] for k in ("activation", "w_var", "b_var", "in_var") if k in task}
    if task["kind"] == "ffnet":
        return rk.FeedForward(task["depth"], **general)
    if "out_var" in task:
        general["out_var"] = task["out_var"]
    if "alpha" in task:
        return rk.ResNet(task["depth"], alpha=task["alpha"], **general)
    return rk.ResNet(task["depth"], gamma=task.get("gamma", 1.0), **general)


def path_of(arch, x, method):
    """The route rk.kernel(arch, x, trained="all", get="ntk") takes (its plan; tables are
    remembered in the process, so this repeats no work after the timed calls)."""
    from reskernel.core import analytic
    arch, trained, x1, x2, _ = analytic.prepare(arch, x, None, "all")
    p = analytic.plan(arch, trained, ("ntk",), x1, x2, method=method, all_depths=False)
    if p.angles is not None:
        return "table"
    # general archs run the recursion in float64 on concrete inputs (reskernel.core.general)
    return f"recursion in {'float64' if not arch.default else np.dtype(p.dtype).name}"


def main(task_path, inputs_path, out_path):
    task = json.load(open(task_path))
    x = np.load(inputs_path)["x"]
    arch = arch_of(task)
    res = {"jax": jax.__version__, "devices": [str(d) for d in jax.devices()]}
    if task["mode"] == "analytic":
        # get="ntk", as neural-tangents is called (kernel_fn(x, None, "ntk")): only the NTK is written
        fn = lambda: rk.kernel(arch, x, all_depths=task.get("all_depths", False),  # noqa: E731
                               trained=task.get("trained", "all"), get="ntk", method=task.get("method", "auto"))
    else:
        net = rk.network(arch, task["width"])
        params = net.init(jax.random.PRNGKey(0), x.shape[1], dtype=np.float32)
        fn = lambda: rk.empirical_kernel(net, params, x, trained="all",  # noqa: E731
                                         batch_size=task.get("batch_size", 256)).ntk
    cold, out = clock(fn)
    warm = [clock(fn)[0] for _ in range(task["repeats"])]
    res.update(cold=cold, warm=min(warm), warm_all=warm)
    if task.get("report_path"):
        res["path"] = path_of(arch, x, task.get("method", "auto"))
    if task.get("save"):
        np.save(out_path, np.asarray(out))
    print(json.dumps(res))


if __name__ == "__main__":
    main(*sys.argv[1:4])
