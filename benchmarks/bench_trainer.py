"""Deep ResNet training on the CPU: the host-stepped trainer's layerwise step
(reskernel.studies.uncertainty._layerwise.resnet_step, each block updated in place during the
backward pass) against jax.grad's step (_trainer._step, the gradient then the update), same
parameters donated, float32, width 1,024, 100 training images of dimension 784, 10 outputs.

Per depth, each step in a fresh process: warm seconds per block and gradient step (min over
--repeats runs of --steps steps), XLA's memory analysis of the step (bytes beyond the donated
parameters, in copies of them), and the process's peak RSS (initialization included).
neural-tangents has no trainer to compare with: the ratios are jax.grad's step over ours.

usage: python benchmarks/bench_trainer.py [--depths 30,100] [--width 1024] [--steps 5] [--repeats 3]
"""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def one(kind, depth, width, steps, repeats):
    """The worker: {"s_per_block_step", "extra_copies", "peak_rss_gb", "param_gb"} of one step kind."""
    import jax
    import jax.numpy as jnp

    import reskernel as rk
    from reskernel.nets.networks import param_groups
    from reskernel.studies.uncertainty import _trainer
    from reskernel.studies.uncertainty._layerwise import resnet_step

    arch = rk.ResNet(depth, gamma=0.5)
    names = tuple(param_groups(arch, "all"))
    model = _trainer.MultiOutput(arch, width, 10)
    x = jax.random.normal(jax.random.PRNGKey(1), (100, 784), jnp.float32)
    y = jnp.zeros((100, 10), jnp.float32)
    init = jax.jit(lambda key: _trainer._split(model.init(key, 784, jnp.float32), names))
    if kind == "grad":
        fn = lambda mv, fx, x, y: _trainer._step(model.apply, mv, fx, x, y, 1e-3)   # noqa: E731
    else:
        fn = resnet_step(model, names, 1e-3)
    step = jax.jit(fn, donate_argnums=0)
    moving, fixed = init(jax.random.PRNGKey(0))
    size = sum(v.nbytes for v in jax.tree.leaves(moving))
    mem = step.lower(moving, fixed, x, y).compile().memory_analysis()
    extra = (mem.temp_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes) / size
    moving = jax.block_until_ready(step(moving, fixed, x, y))      # compile and warm up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            moving = step(moving, fixed, x, y)
        jax.block_until_ready(moving)
        best = min(best, (time.perf_counter() - t0) / steps / depth)
    return {"s_per_block_step": best, "extra_copies": extra, "param_gb": size / 1e9,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def main(argv=None):
    ap = C.parser(__doc__, "trainer", depths="30,100", width=1024, steps=5)
    args = ap.parse_args(argv)
    out = {"machine": C.machine(), "width": args.width, "n": 100, "d": 784, "dtype": "float32", "cases": {}}
    for depth in map(int, args.depths.split(",")):
        got = {}
        for kind in ("grad", "layerwise"):
            got[kind] = C.run_json(sys.executable, __file__, ["--worker", kind, depth, args.width, args.steps,
                                                              args.repeats])
        case = dict(got, time_ratio=got["grad"]["s_per_block_step"] / got["layerwise"]["s_per_block_step"],
                    rss_ratio=got["grad"]["peak_rss_gb"] / got["layerwise"]["peak_rss_gb"])
        out["cases"][str(depth)] = case
        print(f"L = {depth} ({got['grad']['param_gb']:.2f} GB of parameters): ms per block-step jax.grad "
              f"{1e3 * got['grad']['s_per_block_step']:.2f} / layerwise {1e3 * got['layerwise']['s_per_block_step']:.2f} "
              f"-> {case['time_ratio']:.2f}x; step memory beyond the parameters {got['grad']['extra_copies']:.2f} / "
              f"{got['layerwise']['extra_copies']:.2f} copies; peak RSS {got['grad']['peak_rss_gb']:.2f} / "
              f"{got['layerwise']['peak_rss_gb']:.2f} GB -> {case['rss_ratio']:.2f}x", flush=True)
        C.write_result(args.name, out)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        kind, depth, width, steps, repeats = sys.argv[2], *map(int, sys.argv[3:7])
        print(json.dumps(one(kind, depth, width, steps, repeats)))
    else:
        main()
