"""Every benchmark in one command, then RESULTS.md: run this on an idle machine.

  python benchmarks/run_all.py [--force] [--only analytic,sweep,...] [--nt-python PATH]

Steps (each writes benchmarks/results/<name>.json atomically; a step whose result file
is complete and of the current benchmark version is skipped unless --force, so an
interrupted run resumes):
  roofline      flop rate, bandwidths, recursion rate on one tile           (~0.5 min)
  analytic      FFNet and ResNet NTK, n = 4000, depth 100, vs NT, cold/warm   (~6 min)
  analytic_n3000  ResNet at n = 3000, run only when NT failed at n = 4000   (~2 min)
  activations   erf/GELU/tanh FFNet and ResNet NTK, n = 4000, depth 100, vs NT and
                reskernel's ReLU; NT at n = 250, 500 where it fails at 4000  (~35 min)
  sweep         all depths 1..100 at n = 1000 vs NT per depth (extrapolated) (~3.5 min)
  empirical     empirical NTK, widths 512..4096, vs NT implementations 1-3    (~4 min)
  regression    float64 Cholesky of the depth-100 ResNet NTK, n = 2000..10000 (~4.5 min)
  inference     NNGP posterior mean and variances, 3,678 MNIST training vs 10,000 test images,
                ten outputs, depth-20 FFNet; 50 settings of the selection study   (~5 min)
then make_results.py rewrites RESULTS.md. Estimates are for an idle 2-core CPU machine
(neural-tangents' compilations dominate); about 60 minutes in all (activations: an estimate
from trials at n <= 300, depth <= 20, not yet timed at full size).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

# (name, script, arguments, expected cases, estimated seconds on an idle 2-core machine)
STEPS = [
    ("roofline", "roofline.py", [], ["ffnet", "resnet"], 30),
    ("analytic", "bench_analytic.py", ["--n", "4000", "--depth", "100", "--repeats", "3"], ["ffnet", "resnet"], 360),
    ("analytic_n3000", "bench_analytic.py", ["--n", "3000", "--depth", "100", "--repeats", "3", "--archs", "resnet"],
     ["resnet"], 120),
    ("activations", "bench_activations.py", ["--n", "4000", "--depth", "100", "--repeats", "3"],
     [f"{k}/{a}" for k in ("ffnet", "resnet") for a in ("erf", "gelu", "tanh")], 2100),
    ("sweep", "bench_sweep.py", ["--n", "1000", "--depth", "100", "--nt-depths", "5,20,50", "--repeats", "2"],
     ["ffnet", "resnet"], 210),
    ("empirical", "bench_empirical.py", ["--n", "64", "--depth", "4", "--widths", "512,1024,2048,4096", "--repeats", "5"],
     [f"{k}/{w}" for k in ("ffnet", "resnet") for w in (512, 1024, 2048, 4096)], 240),
    ("regression", "bench_regression.py", ["--ns", "2000,4000,6000,8000,10000", "--repeats", "3"],
     ["2000", "4000", "6000", "8000", "10000"], 270),
    ("inference", "bench_inference.py", ["--repeats", "2"],
     ["posterior", "selection_50_float32", "selection_50_float64"], 300),
]
NT_STEPS = {"analytic", "analytic_n3000", "activations", "sweep", "empirical"}


def complete(name, cases):
    path = C.RESULTS / f"{name}.json"
    if not path.exists():
        return False
    res = json.loads(path.read_text())
    have = res.get("cases", res)
    return res.get("benchmark_version") == C.VERSION and all(c in have for c in cases)


def nt_failed_at_4000():
    path = C.RESULTS / "analytic.json"
    if not path.exists():
        return True
    return "error" in json.loads(path.read_text())["cases"].get("resnet", {}).get("neural_tangents", {"error": 1})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="rerun steps whose results exist")
    ap.add_argument("--only", default=None, help="comma-separated step names")
    ap.add_argument("--nt-python", default=None)
    args = ap.parse_args(argv)
    C.nt_python(args.nt_python)  # fail early when the pinned environment is missing
    only = None if args.only is None else set(args.only.split(","))
    todo = [s for s in STEPS if (only is None or s[0] in only) and (args.force or not complete(s[0], s[3]))]
    total = sum(s[4] for s in todo)
    print(f"{len(todo)} step(s) to run: {', '.join(s[0] for s in todo) or 'none'}; "
          f"estimated {total / 60:.0f} min on an idle 2-core machine", flush=True)
    t_start = time.perf_counter()
    for name, script, extra, _cases, estimate in todo:
        if name == "analytic_n3000" and not nt_failed_at_4000() and only is None:
            print("analytic_n3000: neural-tangents finished the ResNet at n = 4000; skipped", flush=True)
            continue
        cmd = [sys.executable, str(C.HERE / script), *extra, "--name", name]
        if name in NT_STEPS and args.nt_python:
            cmd += ["--nt-python", args.nt_python]
        print(f"== {name} (about {estimate / 60:.1f} min): {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=C.clean_env())
        status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
        print(f"== {name}: {status} in {time.perf_counter() - t0:.0f} s", flush=True)
    subprocess.run([sys.executable, str(C.HERE / "make_results.py")], env=C.clean_env(), check=True,
                   stdout=subprocess.DEVNULL)
    print(f"wrote {C.HERE / 'RESULTS.md'}; total {time.perf_counter() - t_start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
