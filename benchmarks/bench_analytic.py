"""reskernel vs neural-tangents 0.6.5: analytic NTK (every layer trained), n unit inputs,
float32, FFNet and ResNet (gamma = 1) of one depth; cold (fresh process, incl.
compilation) and warm; identical inputs (one temp npz) in the same run; ratios printed.
reskernel runs twice: its default (method="auto": interpolated from a float64 table of the
input angle, reskernel.tabulated) and method="recursion" (the fused depth recursion).
A neural-tangents process that fails (e.g. killed for memory) is recorded as such.

usage: python benchmarks/bench_analytic.py [--n 4000] [--depth 100] [--repeats 3]
       [--nt-repeats 1] [--archs ffnet,resnet] [--nt-python PATH] [--name analytic]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

# result key -> reskernel's `method`
METHODS = {"reskernel": "auto", "reskernel_recursion": "recursion"}


def main(argv=None):
    ap = C.parser(__doc__, "analytic", n=4000, depth=100, nt_repeats=1, archs="ffnet,resnet")
    args = ap.parse_args(argv)
    with C.session(args, args.n, depth=args.depth, trained="all") as (nt_py, out, tmp):
        for kind in args.archs.split(","):
            scales = [] if kind == "ffnet" else [args.depth ** -1.0] * args.depth
            task = {"mode": "analytic", "kind": kind, "depth": args.depth, "gamma": 1.0,
                    "repeats": args.repeats, "trained": "all"}
            case = {}
            for key, method in METHODS.items():
                runs = [C.worker(sys.executable, "rk_worker.py", dict(task, method=method, save=r == 0), tmp,
                                 f"rk_{method}.npy") for r in range(args.repeats)]
                case[key] = {"method": method, "cold": min(r["cold"] for r in runs), "warm": min(r["warm"] for r in runs),
                             "cold_all": [r["cold"] for r in runs], "warm_all": [w for r in runs for w in r["warm_all"]]}
                print(kind, key, case[key], file=sys.stderr, flush=True)
            try:
                ntr = C.worker(nt_py, "nt_worker.py", {"mode": "analytic", "kind": kind, "depth": args.depth,
                                                       "scales": scales, "repeats": args.nt_repeats, "save": True},
                               tmp, "nt.npy")
            except RuntimeError as e:  # killed by the OOM killer at large n, for instance
                case["neural_tangents"] = {"error": str(e)[-600:]}
                print(f"{kind}: neural-tangents failed: {str(e)[-300:]}", flush=True)
            else:
                # documented rescaling: reskernel(x) = d * neural_tangents(x)
                b = args.d * np.load(tmp / "nt.npy").astype(np.float64)
                case["neural_tangents"] = ntr
                for key, method in METHODS.items():
                    a = np.load(tmp / f"rk_{method}.npy").astype(np.float64)
                    r = case[key]
                    r.update(max_abs_diff_over_max=float(np.abs(a - b).max() / np.abs(b).max()),
                             speedup_warm=ntr["warm"] / r["warm"], speedup_cold=ntr["cold"] / r["cold"])
                    print(f"{kind} ({method}): reskernel cold {r['cold']:.2f} s warm {r['warm']:.2f} s | "
                          f"NT cold {ntr['cold']:.1f} s warm {ntr['warm']:.1f} s | speedup warm {r['speedup_warm']:.1f}x "
                          f"cold {r['speedup_cold']:.1f}x | agreement {r['max_abs_diff_over_max']:.1e}", flush=True)
            out["cases"][kind] = case
            C.write_result(args.name, out)


if __name__ == "__main__":
    main()
