"""Depth sweep: the NTK at every depth 1..L. reskernel: one all_depths call (one
recursion pass, compile time independent of L). neural-tangents 0.6.5: one compiled
kernel_fn per depth; timed (cold = compile + first call) at a few depths and
extrapolated to the sum over 1..L by a least-squares line in depth (stated so).

usage: python benchmarks/bench_sweep.py [--n 1000] [--depth 100] [--nt-depths 5,20,50] [--repeats 3] [--alpha 0.1]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def main(argv=None):
    ap = C.parser(__doc__, "sweep", n=1000, depth=100, nt_depths="5,20,50", alpha=0.1)
    args = ap.parse_args(argv)
    nt_depths = [int(v) for v in args.nt_depths.split(",")]
    method = "NT sweep time = sum over l=1..L of (a + b l), a line fitted to NT cold times at nt_depths"
    with C.session(args, args.n, depth=args.depth, alpha=args.alpha, nt_depths=nt_depths, method=method) as (nt_py, out, tmp):
        for kind in ("ffnet", "resnet"):
            case = {}
            for label, all_depths in (("all_depths", True), ("single", False)):
                task = {"mode": "analytic", "kind": kind, "depth": args.depth, "alpha": args.alpha,
                        "all_depths": all_depths, "repeats": 2, "trained": "all"}
                runs = [C.worker(sys.executable, "rk_worker.py", task, tmp) for _ in range(args.repeats)]
                case[f"reskernel_{label}"] = {"cold": min(r["cold"] for r in runs), "warm": min(r["warm"] for r in runs)}
            nt = {}
            for depth in nt_depths:
                nt[depth] = C.worker(nt_py, "nt_worker.py", {"mode": "analytic", "kind": kind, "depth": depth,
                                                             "scales": [args.alpha] * depth, "repeats": 1}, tmp)
                print(kind, depth, nt[depth], file=sys.stderr, flush=True)
            ls = np.array(nt_depths, float)
            fit = np.polyfit(ls, [nt[l]["cold"] for l in nt_depths], 1)
            all_l = np.arange(1, args.depth + 1)
            case["neural_tangents_measured"] = {str(k): v for k, v in nt.items()}
            case["neural_tangents_sweep_extrapolated_s"] = float(np.polyval(fit, all_l).sum())
            case["sweep_speedup"] = case["neural_tangents_sweep_extrapolated_s"] / case["reskernel_all_depths"]["cold"]
            case["sweep_over_single_warm"] = case["reskernel_all_depths"]["warm"] / case["reskernel_single"]["warm"]
            out["cases"][kind] = case
            print(f"{kind}: reskernel all depths cold {case['reskernel_all_depths']['cold']:.2f} s (single depth "
                  f"{case['reskernel_single']['cold']:.2f} s); NT sweep ~{case['neural_tangents_sweep_extrapolated_s']:.0f} s "
                  f"(extrapolated) -> {case['sweep_speedup']:.0f}x", flush=True)
            C.write_result(args.name, out)


if __name__ == "__main__":
    main()
