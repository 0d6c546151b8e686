"""One kernel computed by 1, 2, 4 local processes (jax.distributed over localhost, CPU collectives).

Each run starts P processes of this script (--worker), one CPU device each, which call
reskernel.core.distributed.initialize and then compute the same kernel: rk.ResNet(depth,
gamma=1) NTK and NNGP of n unit-norm Gaussian inputs (d = 784, float32, seed 0), rows sharded
over the P processes' devices (reskernel.sharded_kernel over the global mesh), each process its
own n / P rows. Per process: start-up (import + initialize), the first call (tables, compilation
and compute) and the best of --repeats warm calls (compute alone), each as wall time and as the
process's CPU time (all its threads; less disturbed by other load than wall), the gather of the whole
kernel to every host (process_allgather), and peak RSS (getrusage ru_maxrss). Wall: from the
start of the processes until the last exits. With --store, the same kernel is also written to
a disk store (write_kernel, row blocks of --block) and timed.

On a machine with C cores, P > C processes share them: no gain is expected past P = C.

usage: nice -n 5 python benchmarks/bench_distributed.py [--n 8000] [--depth 100]
       [--processes 1 2 4] [--method auto|table|recursion] [--repeats 2] [--store]
"""
import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _common as C  # noqa: E402


def worker(task):
    t0 = time.perf_counter()
    import numpy as np
    from reskernel.core import distributed
    distributed.initialize(f"localhost:{task['port']}", task["processes"], task["process_id"], timeout=120)
    import jax
    import reskernel as rk
    x = C.unit_inputs(task["n"], task["d"])
    arch = rk.ResNet(task["depth"], gamma=1.0)
    out = {"startup_s": time.perf_counter() - t0, "devices": len(jax.devices()), "local": len(jax.local_devices())}
    times, cpu = [], []
    for _ in range(1 + task["repeats"]):
        t, c = time.perf_counter(), time.process_time()
        k = jax.block_until_ready(rk.sharded_kernel(arch, x, method=task["method"]))
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    out["first_s"], out["warm_s"] = times[0], min(times[1:]) if times[1:] else None
    out["first_cpu_s"], out["warm_cpu_s"] = cpu[0], min(cpu[1:]) if cpu[1:] else None
    out["rows"] = sorted(int(s.index[0].start or 0) for s in k.ntk.addressable_shards)
    t = time.perf_counter()
    full = distributed.gather(k.ntk)
    out["gather_s"] = time.perf_counter() - t
    out["checksum"] = float(np.float64(full.astype(np.float64).sum()))
    del full, k
    if task.get("store"):
        t = time.perf_counter()
        distributed.write_kernel(task["store"], arch, x, block=task["block"], method=task["method"])
        out["store_s"] = time.perf_counter() - t
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run(processes, args, tmp):
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, JAX_PLATFORMS="cpu", OPENBLAS_NUM_THREADS="1",
               XLA_FLAGS="--xla_force_host_platform_device_count=1")
    env.pop("JAX_ENABLE_X64", None)
    procs, t0 = [], time.perf_counter()
    for pid in range(processes):
        task = dict(port=port, processes=processes, process_id=pid, n=args.n, d=args.d, depth=args.depth,
                    method=args.method, repeats=args.repeats, block=args.block,
                    store=str(Path(tmp) / f"store_{processes}") if args.store else None)
        procs.append(subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(task)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=args.timeout)
        if p.returncode:
            raise RuntimeError(f"worker failed ({p.returncode}):\n{stderr[-3000:]}")
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    return {"processes": processes, "wall_s": time.perf_counter() - t0, "per_process": outs}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=8000)
    ap.add_argument("--d", type=int, default=784)
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--method", default="auto", choices=("auto", "table", "recursion"))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--store", action="store_true")
    ap.add_argument("--block", type=int, default=2000)
    ap.add_argument("--timeout", type=int, default=3600)
    ap.add_argument("--name", default="bench_distributed")
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return None
    out = {"machine": C.machine(), "args": vars(args), "runs": []}
    print(f"ResNet({args.depth}, gamma=1) NTK + NNGP, n = {args.n}, d = {args.d}, float32, method={args.method}; "
          f"load average at start {os.getloadavg()}", flush=True)
    head = (f"{'P':>2} {'wall s':>7} {'start s':>8} {'first s':>8} {'warm s':>7} {'warm CPU s':>10} {'gather s':>8} "
            + (f"{'store s':>8} " if args.store else "") + f"{'peak RSS MB':>11}  (per process: max over processes)")
    print(head, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for p in args.processes:
            r = run(p, args, tmp)
            r["loadavg_after"] = os.getloadavg()
            out["runs"].append(r)
            pp = r["per_process"]

            def top(key):
                vals = [q[key] for q in pp if q.get(key) is not None]
                return max(vals) if vals else float("nan")
            print(f"{p:>2} {r['wall_s']:>7.1f} {top('startup_s'):>8.1f} {top('first_s'):>8.1f} {top('warm_s'):>7.2f} "
                  f"{top('warm_cpu_s'):>10.2f} "
                  f"{top('gather_s'):>8.2f} " + (f"{top('store_s'):>8.1f} " if args.store else "")
                  + f"{top('peak_rss_mb'):>11.0f}  load {r['loadavg_after'][0]:.1f}", flush=True)
    sums = {r["per_process"][0]["checksum"] for r in out["runs"]}
    print(f"checksums of the gathered NTK agree across runs: {len(sums) == 1}")
    C.write_result(args.name, out)
    return out


if __name__ == "__main__":
    main()
