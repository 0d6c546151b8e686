"""Empirical NTK (every layer trained, float32): reskernel "structured" vs neural-tangents
0.6.5 empirical_ntk_fn implementations 1 (Jacobian contraction), 2 (NTK-vector
products), 3 (structured derivatives), jitted, on identical inputs and the same
architecture (parameters drawn by each library; timings do not depend on values).

usage: python benchmarks/bench_empirical.py [--n 64] [--depth 4] [--widths 512,1024,2048,4096]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def main(argv=None):
    ap = C.parser(__doc__, "empirical", n=64, depth=4, widths="512,1024,2048,4096", jacobian_max_width=1024)
    args = ap.parse_args(argv)  # NT implementation 1 (Jacobians) needs memory ~ n * #params: widths <= jacobian_max_width
    alpha = args.depth ** -1.0
    with C.session(args, args.n, depth=args.depth) as (nt_py, out, tmp):
        for kind in ("ffnet", "resnet"):
            for width in map(int, args.widths.split(",")):
                rk_res = C.worker(sys.executable, "rk_worker.py", {"mode": "empirical", "kind": kind, "depth": args.depth,
                                                                   "alpha": alpha, "width": width, "repeats": args.repeats}, tmp)
                impls = [1, 2, 3] if width <= args.jacobian_max_width else [2, 3]
                nt_res = C.worker(nt_py, "nt_worker.py", {"mode": "empirical", "kind": kind, "depth": args.depth,
                                                          "scales": [alpha] * args.depth, "width": width,
                                                          "implementations": impls, "repeats": args.repeats}, tmp)
                ok = {k: v for k, v in nt_res["implementations"].items() if "warm" in v}
                best = min(ok, key=lambda k: ok[k]["warm"])
                case = {"reskernel": rk_res, "neural_tangents": nt_res, "nt_best_implementation": int(best),
                        "speedup_warm_vs_best": ok[best]["warm"] / rk_res["warm"],
                        "speedup_cold_vs_best": min(v["cold"] for v in ok.values()) / rk_res["cold"]}
                out["cases"][f"{kind}/{width}"] = case
                print(f"{kind} width {width}: reskernel warm {rk_res['warm']:.3f} s cold {rk_res['cold']:.2f} s | NT best "
                      f"(impl {best}) warm {ok[best]['warm']:.3f} s -> {case['speedup_warm_vs_best']:.2f}x", flush=True)
                C.write_result(args.name, out)


if __name__ == "__main__":
    main()
