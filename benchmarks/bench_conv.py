"""Convolutional kernels against neural-tangents (issue 16): float32 CIFAR-size images
(32 x 32 x 3), a ReLU CNN with 3 x 3 filters and "same" padding, NTK with every layer trained
(neural-tangents' convention), each library in a fresh process per case.

Cases (NAME: what is timed):
  flatten_256     flatten readout, depth 10, n = 256: both libraries.
  gap_8           global-average-pool readout, depth 10, n = 8: both (neural-tangents in one call).
  gap21_8         the same at depth 21, the depth of neural-tangents' published 21-layer pooled CNN.
  gap_16, gap_32  pooled, depth 10, reskernel only: the sizes at which neural-tangents' one call
                  fails here (nt_oom: n = 16 under the 22 GB cap, n = 32 asking for 25.9 GB).
  gap_64_batched  pooled, depth 10, n = 64: both, neural-tangents by nt.batch in 8 x 8 blocks
                  (its one call runs out of memory; ~1.4 h on a 2-core AMD EPYC, one call each).
  gap_64, gap_128 pooled, depth 10: reskernel measured; neural-tangents' time is an ESTIMATE, its
                  per-entry cost at n = 8 times n^2 (its cost is n^2 times a per-entry cost; a
                  measured run would take 2-9 hours here), marked "estimated" in the table.
  nt_oom          the smallest n among --oom-sizes at which neural-tangents' single call fails for
                  lack of memory under --mem-limit-gb (address-space limit), and reskernel's
                  per-entry cost and peak memory at the measured sizes.
Each timing: cold = first call including compilation; warm = min over --repeats further calls
(none for the largest sizes: their one call is reported, compilation being < 1 % of it).
Peak memory: the worker's ru_maxrss. Both workers return the kernel's [:4, :4], compared here.

usage: python benchmarks/bench_conv.py [--only gap_8,flatten_256] [--force] [--repeats 1]
Results: benchmarks/results/conv.json (merged case by case, atomic writes; a finished case is
not rerun unless --force), each case with the machine it ran on; neural-tangents' estimates
only from its gap_8 rate on the same CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _common as C  # noqa: E402

NAME = "conv"
CASES = {
    "flatten_256": dict(readout="flatten", depth=10, n=256, nt=True),
    "gap_8": dict(readout="gap", depth=10, n=8, nt=True),
    "gap21_8": dict(readout="gap", depth=21, n=8, nt=True),
    "gap_16": dict(readout="gap", depth=10, n=16, nt=False, repeats=0),
    "gap_32": dict(readout="gap", depth=10, n=32, nt=False, repeats=0),
    "gap_64": dict(readout="gap", depth=10, n=64, nt=False),
    "gap_128": dict(readout="gap", depth=10, n=128, nt=False, repeats=0),
    "gap_64_batched": dict(readout="gap", depth=10, n=64, nt=True, nt_batch=8, repeats=0),
}


def images(n, seed=0):
    """(n, 32, 32, 3) float32 standard normal images (nt_conv_worker.images is the same)."""
    return np.random.default_rng(seed).standard_normal((n, 32, 32, 3)).astype(np.float32)


def rk_worker(task):
    """reskernel's side of a case, in this (fresh) process: the JSON dict the orchestrator reads."""
    import jax

    import reskernel as rk
    arch = rk.ConvNet(depth=task["depth"], filter_size=3, readout=task["readout"])
    x = images(task["n"])
    times = []
    for _ in range(1 + task["repeats"]):
        t0 = time.perf_counter()
        k = rk.kernel(arch, x, trained="all", get="ntk")
        times.append(time.perf_counter() - t0)
    return {"jax": jax.__version__, "devices": [str(d) for d in jax.devices()], "cold": times[0],
            "warm": min(times[1:]) if times[1:] else None, "corner": np.asarray(k)[:4, :4].tolist(),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_worker(python, args, task, timeout):
    """Run a worker on `task` in a fresh process; its last JSON line, or {"error": ...} on a
    crash or a timeout."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(task, f)
    try:
        proc = subprocess.run([str(python), *args, f.name], capture_output=True, text=True,
                              env=C.clean_env(), timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {timeout} s", "error_type": "timeout"}
    finally:
        os.unlink(f.name)
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    if lines:
        last = json.loads(lines[-1])
        if "cold" in last or "error" in last:
            return last
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit {proc.returncode}: {tail[:500]}",
            "error_type": "killed" if proc.returncode < 0 else "crash"}


def load():
    path = C.RESULTS / f"{NAME}.json"
    return json.loads(path.read_text()) if path.exists() else {"cases": {}}


def save(name, case):
    """Merge one case into results/conv.json (re-read first: two runs may write the folder),
    with the machine it ran on (cases of one file may come from different machines)."""
    out = load()
    out["cases"][name] = dict(case, machine=C.machine())
    out["machine"] = C.machine()
    C.write_result(NAME, out)


def per_entry(seconds, n):
    return seconds / (n * n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(list(CASES) + ["nt_oom"]))
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--nt-python", default=None)
    ap.add_argument("--timeout", type=int, default=7200)
    ap.add_argument("--oom-sizes", default="64,32,24,16")
    ap.add_argument("--mem-limit-gb", type=float, default=22.0)
    args = ap.parse_args()
    nt_py = C.nt_python(args.nt_python)
    done = load()["cases"]
    me = [__file__, "--worker"]
    nt_me = [str(HERE / "nt_conv_worker.py")]
    for name in args.only.split(","):
        if name in done and not args.force:
            print(f"{name}: done ({C.RESULTS / NAME}.json)", flush=True)
            continue
        if name == "nt_oom":
            rows = []
            for n in map(int, args.oom_sizes.split(",")):
                task = dict(kind="convnet", readout="gap", depth=10, n=n, repeats=0, mem_limit_gb=args.mem_limit_gb)
                start = time.time()
                # running out of memory shows in the first layers; a call still running after
                # 600 s has its memory
                res = run_worker(nt_py, nt_me, task, timeout=600)
                res.update(n=n, seconds=time.time() - start, loadavg=os.getloadavg())
                rows.append(res)
                print(name, n, {k: res.get(k) for k in ("error_type", "error", "cold", "peak_rss_mb")}, flush=True)
                if "error" not in res or res.get("error_type") == "timeout":
                    break
            save(name, {"mem_limit_gb": args.mem_limit_gb, "rows": rows})
            continue
        spec = CASES[name]
        task = dict(kind="convnet", readout=spec["readout"], depth=spec["depth"], n=spec["n"],
                    repeats=spec.get("repeats", args.repeats))
        case = {"task": task, "loadavg_before": os.getloadavg()}
        case["rk"] = run_worker(sys.executable, me, task, args.timeout)
        print(name, "reskernel", case["rk"], flush=True)
        if spec["nt"]:
            case["nt"] = run_worker(nt_py, nt_me, dict(task, batch=spec.get("nt_batch", 0)), args.timeout)
            print(name, "neural-tangents", case["nt"], flush=True)
        case["loadavg_after"] = os.getloadavg()
        save(name, case)
    report(load())


def report(out):
    """The comparison table (markdown) from results/conv.json."""
    cases = out["cases"]
    print("| case | reskernel cold / warm (s) | per entry | neural-tangents cold / warm (s) | per entry | ratio (warm, else cold) | max rel diff [:4,:4] |")
    print("|---|---|---|---|---|---|---|")
    nt_rate, cpu = {}, lambda c: c.get("machine", {}).get("cpu")   # noqa: E731
    for name in ("gap_8", "gap21_8", "flatten_256"):
        c = cases.get(name, {})
        if "corner" in c.get("nt", {}):
            nt_rate[name] = per_entry(c["nt"]["warm"] or c["nt"]["cold"], c["task"]["n"])
    for name, c in cases.items():
        if name == "nt_oom" or "rk" not in c or "error" in c["rk"]:
            continue
        n = c["task"]["n"]
        rk_t = c["rk"]["warm"] or c["rk"]["cold"]
        nt = c.get("nt")
        if nt and "corner" in nt:   # warm when measured, else the one (cold) call
            nt_t, tag = nt["warm"] or nt["cold"], "" if nt["warm"] else " (cold)"
            diff = np.max(np.abs(np.array(c["rk"]["corner"]) - nt["corner"]) / np.abs(nt["corner"]).max())
            diff = f"{diff:.1e}"
        elif (c["task"]["readout"] == "gap" and c["task"]["depth"] == 10 and "gap_8" in nt_rate
              and cpu(c) == cpu(cases["gap_8"])):   # an estimate only from neural-tangents on the same CPU
            nt_t, tag, diff = nt_rate["gap_8"] * n * n, " (estimated from gap_8)", "-"
        else:
            nt_t = None
        warm = f"{c['rk']['warm']:.2f}" if c["rk"]["warm"] else "-"
        if nt_t is None:
            print(f"| {name} | {c['rk']['cold']:.2f} / {warm} | {per_entry(rk_t, n) * 1e3:.2f} ms | "
                  f"- (not run; none on this CPU to estimate from) | - | - | - |")
            continue
        nt_cold = f"{nt['cold']:.1f}" if nt and nt.get("cold") else "-"
        print(f"| {name} | {c['rk']['cold']:.2f} / {warm} | {per_entry(rk_t, n) * 1e3:.2f} ms | "
              f"{nt_cold} / {nt_t:.1f}{tag} | {per_entry(nt_t, n) * 1e3:.1f} ms | {nt_t / rk_t:.1f}x | {diff} |")
    if "nt_oom" in cases:
        for row in cases["nt_oom"]["rows"]:
            print(f"nt_oom n = {row['n']}: {row.get('error_type', 'ran')} {row.get('error', '')[:120]} "
                  f"({row['seconds']:.0f} s, peak {row.get('peak_rss_mb', 0):.0f} MB)")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        print(json.dumps(rk_worker(json.load(open(sys.argv[2])))), flush=True)
    else:
        main()
