"""The measured agreement of docs/conventions.md ("Rescaling to neural-tangents' stax"), from the
cases of tests/test_reference_nt.py. Run in the main environment (it starts .venv-nt itself):

    .venv/bin/python tests/nt_reference/report.py

prints, per activation and architecture, the largest relative error (max |ours - nt| over the
largest |nt|) over depths 1, 3, 10 and the variance sets, and for tanh the error against
stax.ElementwiseNumerical at each quadrature degree with that layer's own error estimate.
"""
import sys
import tempfile
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import test_reference_nt as t

import reskernel as rk


def main():
    jax.config.update("jax_enable_x64", True)
    x1, x2 = t.mapped_inputs()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = t._run_nt(Path(tmp), [{**c, "inputs": "mapped"} for c in t.mapped_cases()], {"mapped": (x1, x2)})
    print(f"neural-tangents {out['nt_version']} on jax {out['jax_version']}: {time.perf_counter() - start:.0f} s")
    start = time.perf_counter()
    worst = {}
    for name, arch, _ in t.MAPPED:
        act, kind = name.split("-")[0], "FeedForward" if isinstance(arch, rk.FeedForward) else "ResNet"
        k = rk.kernel(arch, x1, x2, trained="all")
        errs = worst.setdefault((act, kind), [0.0, 0.0])
        for i, get in enumerate(("nngp", "ntk")):
            errs[i] = max(errs[i], t._rel(getattr(k, get), out[f"{name}/{get}"]))
    print("| activation | FeedForward NNGP | FeedForward NTK | ResNet NNGP | ResNet NTK |\n|---|---|---|---|---|")
    for act, _, _ in t.ACTIVATIONS:
        cells = [f"{e:.1e}" for kind in ("FeedForward", "ResNet") for e in worst[(act, kind)]]
        print(f"| {act} | " + " | ".join(cells) + " |")
    degs = t.TANH_DEGS
    head = ["tanh", *(f"deg {d}" for d in degs), f"nt's estimate at {degs[-1]}"]
    print("\n| " + " | ".join(head) + " |\n" + "|---" * len(head) + "|")
    for name, arch in t.TANH:
        k = rk.kernel(arch, x1, x2, trained="all")
        for get in ("nngp", "ntk"):
            nt = [out[f"{name}/{d}/{get}"] for d in degs]
            errs = [f"{t._rel(getattr(k, get), r):.1e}" for r in nt]
            print(f"| {name} {get} | " + " | ".join(errs) + f" | {t._rel(nt[-2], nt[-1]):.1e} |")
    print(f"\nreskernel: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
