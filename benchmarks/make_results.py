"""Write benchmarks/RESULTS.md (atomically) from benchmarks/results/*.json.

usage: python benchmarks/make_results.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from reskernel.studies._store import write_text_atomic  # noqa: E402


def read(path):
    """A result of the current benchmark version, else None (stale results are left out)."""
    res = json.loads(path.read_text())
    if res.get("benchmark_version") != C.VERSION:
        print(f"skipping {path.name}: written by an older benchmark version", file=sys.stderr)
        return None
    return res


def load(name):
    p = C.RESULTS / f"{name}.json"
    return read(p) if p.exists() else None


def table(header, rows):
    """Markdown table lines: header cells, then one line per row of cells."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(map(str, r)) + " |" for r in rows] + [""]


def machine_line(m):
    return (f"Machine: {m.get('cpu', '?')}, {m['cpu_count']} cores, devices {m['devices']}, jax {m['jax']}, "
            f"load average at start {tuple(round(v, 1) for v in m.get('loadavg_at_start', ()))}")


def limits(roof):
    lines = ["## Limits (benchmarks/roofline.py)", "", machine_line(roof["machine"]), "",
             f"- vector issue: {roof['flops_per_s_f32'] / 1e9:.1f} GFlop/s of independent multiply-adds "
             f"({roof['fma_lane_instructions_per_s'] / 1e9:.1f} G lane-instructions/s; compiler options {roof['compiler_options']})",
             f"- square roots: {roof['sqrt_lanes_per_s'] / 1e9:.2f} G/s (independent chains; a separate, partly pipelined unit)",
             f"- read bandwidth (sum over 512 MB): {roof['bytes_per_s'] / 1e9:.1f} GB/s; "
             f"read + write into a fresh array (y = 2x + 1, 256 MB): {roof['copy_bytes_per_s'] / 1e9:.1f} GB/s", ""]
    rows = []
    for k in ("ffnet", "resnet"):
        r = roof[k]
        lim = r.get("arith_limit_entry_layers_per_s")
        rows.append((k, r.get("vector_ops_per_entry", "n/a"), r.get("sqrt_per_entry", "n/a"),
                     f"{r['entry_layers_per_s_one_tile']:.3g}", f"{lim:.3g} ({r['bound']})" if lim else "n/a (no objdump)",
                     f"{r['entry_layers_per_s_one_tile'] / lim:.2f}" if lim else "n/a"))
    lines += table(["recursion", "vector ops / entry / layer", "sqrt / entry / layer",
                    "one 512x512 tile, 100 layers: entry-layers/s", "arithmetic limit (bound)", "fraction"], rows)
    lines += ["Operation counts are the vector instructions of the innermost loop of the compiled layer (objdump of "
              "XLA's object file; loads, stores and register moves left out); the limit is "
              "1 / max(ops / issue rate, sqrt / sqrt rate), two ceilings that can overlap, so it is optimistic. "
              "Each tile's state stays in cache through all layers (one fused loop per layer), so a single-depth kernel is "
              "bounded by arithmetic; a per-layer n x n round trip to memory would move ~16 bytes per entry-layer, i.e. "
              f"{roof['bytes_per_s'] / 16:.3g} entry-layers/s at the read bandwidth. The all-depths output (L n^2 float32 per kernel) "
              "is bounded by writing it: 4 L n^2 bytes per kernel at the fresh-array write rate.", ""]
    return lines


def analytic(an, roof):
    lines = [f"## Analytic NTK, n = {an['n']}, depth {an['depth']}, float32 (reskernel on jax {an['machine'].get('jax', '?')} vs "
             "neural-tangents in the pinned env)", "", machine_line(an["machine"]), ""]
    rows = []
    for k, c in an["cases"].items():
        n = c.get("neural_tangents", {})
        for key in ("reskernel", "reskernel_recursion"):
            if key not in c:
                continue
            r = c[key]
            label = f"{k} ({r.get('method', 'recursion')})"
            if "error" in n:
                rows.append((label, f"{r['cold']:.2f} s", f"{r['warm']:.2f} s", "failed", "failed", "-", "-",
                             n["error"][-80:].replace("\n", " ")))
            else:
                rows.append((label, f"{r['cold']:.2f} s", f"{r['warm']:.2f} s", f"{n['cold']:.1f} s", f"{n['warm']:.1f} s",
                             f"{r['speedup_cold']:.0f}x", f"{r['speedup_warm']:.0f}x", f"{r['max_abs_diff_over_max']:.1e}"))
    lines += table(["arch (reskernel method)", "reskernel cold", "reskernel warm", "NT cold", "NT warm", "speedup cold", "speedup warm",
                    "max abs diff / max"], rows)
    if roof:
        entries = an["n"] * (an["n"] + 1) / 2 * an["depth"]
        rec = {k: c.get("reskernel_recursion", c["reskernel"]) for k, c in an["cases"].items()}
        parts = [f"{k}: {entries / roof[k]['arith_limit_entry_layers_per_s']:.2f} s (measured warm "
                 f"{rec[k]['warm']:.2f} s, {rec[k]['warm'] * roof[k]['arith_limit_entry_layers_per_s'] / entries:.1f}x)"
                 for k in rec if "arith_limit_entry_layers_per_s" in roof.get(k, {})]
        lines += ["Arithmetic limit of the depth recursion (symmetric kernel, upper triangle only), against "
                  "method=\"recursion\": " + ", ".join(parts) + ". The default (table) does no per-layer work per "
                  "entry; its floor is the Gram matrix product (see the notes).", ""]
    return lines


def _secs(t):
    return f"{t:.3g} s"


def _nt_cells(n):
    """(NT cold, NT warm) cells of a neural-tangents run: times, or why there are none."""
    if "error" in n:
        return "failed: " + (n["error"].strip().splitlines() or [""])[-1][-70:].replace("|", "/"), "-"
    if "timed_out_after_s" in n:
        done, cells = n["finished_calls_s"], [f"timed out after {n['timed_out_after_s']:.0f} s"] * 2
        for i, t in enumerate((done[:1], done[1:])):
            if t:
                cells[i] = _secs(min(t)) + ("" if i == 0 else " (killed during a later repeat)")
            elif n.get("running_call") == (0 if i == 0 else 1):
                cells[i] = f"> {n['running_call_s']:.0f} s (killed at the limit)"
        return tuple(cells)
    return _secs(n["cold"]), _secs(n["warm"])


def _ratio_cells(c):
    cells = []
    for k in ("speedup_cold", "speedup_warm"):
        cells.append(f"{c[k]:.0f}x" if k in c else f">= {c[k + '_at_least']:.0f}x" if k + "_at_least" in c else "-")
    return cells + [f"{c['max_abs_diff_over_max']:.1e}" if "max_abs_diff_over_max" in c else "-"]


def activations(ac):
    v = ac["variances"]
    lines = [f"## Activations: analytic NTK, n = {ac['n']}, depth {ac['depth']}, float32, erf / GELU / tanh vs "
             "neural-tangents (benchmarks/bench_activations.py)", "", machine_line(ac["machine"]), "",
             f"FFNet: `FeedForward(depth, w_var={v['w_var']:g}, b_var={v['b_var']:g}, in_var={v['in_var']:g})`; ResNet: "
             f"`ResNet(depth, gamma={v['gamma']:g}, w_var={v['w_var']:g}, b_var={v['b_var']:g}, in_var={v['in_var']:g}, "
             f"out_var={v['out_var']:g})`; neural-tangents: the stax net of `tests/nt_reference/compute.py: stax_mapped` "
             "(same kernels, no rescaling). erf and GELU are closed forms in both libraries; tanh is numerical in both "
             f"(reskernel: its Hermite series; neural-tangents: `ElementwiseNumerical(jnp.tanh, deg={ac['tanh_deg']})`, "
             "whose quadrature error is in the agreement column). \"x ReLU\" is reskernel's time over its own time for "
             "the default ReLU net of the same kind, same n, depth and run. Inputs: "
             f"{ac['inputs']} unit rows (squared norms spread {ac['squared_norm_spread']:.1e} relative); \"path\" is the "
             "route reskernel took (table: interpolated from float64 tables of the input correlation). A neural-tangents "
             f"process runs under {ac['nt_timeout_s']:.0f} s and an address-space cap of {ac['nt_mem_gb']:g} GiB; "
             "a bound \">=\" comes from a call still running when it was killed.", ""]
    rows = []
    for kind, r in ac["relu"].items():
        if "warm" in r:
            rows.append((f"{kind} / relu (default)", r["path"], _secs(r["cold"]), _secs(r["warm"]), "1", "", "", "", "", ""))
    notes = []
    for label, c in ac["cases"].items():
        r = c["reskernel"]
        if "warm" not in r:
            rows.append((label, "-", "failed" if "error" in r else "timed out", "-", "-", *_nt_cells(c["neural_tangents"]),
                         "-", "-", "-"))
            continue
        rows.append((label, r["path"], _secs(r["cold"]), _secs(r["warm"]),
                     f"{c['over_relu_warm']:.2f}" if "over_relu_warm" in c else "-",
                     *_nt_cells(c["neural_tangents"]), *_ratio_cells(c)))
        small = c.get("small_n", {})
        for m, s in small.get("runs", {}).items():
            sr = s["reskernel"]
            rows.append((f"{label}, n = {m}", sr.get("path", "-"), _secs(sr["cold"]) if "cold" in sr else "-",
                         _secs(sr["warm"]) if "warm" in sr else "-", "", *_nt_cells(s["neural_tangents"]),
                         *_ratio_cells(s)))
        if "nt_warm_exponent_measured" in small:
            m1, m2 = small["exponent_between"]
            notes.append(f"- {label}: neural-tangents' warm time grew as n^{small['nt_warm_exponent_measured']:.2f} "
                         f"between n = {m1} and {m2} (measured; reskernel's "
                         + (f"as n^{small['reskernel_warm_exponent_measured']:.2f}). " if "reskernel_warm_exponent_measured"
                            in small else "took different paths there). ")
                         + f"Continuing n^{small['nt_warm_exponent_measured']:.2f} to n = {ac['n']} would give "
                         f"{small['nt_warm_at_n_extrapolated_not_measured']:.0f} s: an extrapolation, not a measurement.")
    lines += table(["arch / activation", "path", "reskernel cold", "reskernel warm", "x ReLU (warm)", "NT cold", "NT warm",
                    "speedup cold", "speedup warm", "max abs diff / max"], rows)
    return lines + (notes + [""] if notes else [])


def sweep(sw, roof):
    lines = [f"## Depth sweep, all depths 1..{sw['depth']}, n = {sw['n']} (ResNet alpha = {sw['alpha']} at every depth)", "",
             f"neural-tangents compiles one kernel per depth; it was timed (compile + first call) at depths {sw['nt_depths']} "
             "and the sweep time is extrapolated as the sum over l = 1..L of a fitted line a + b l (not measured in full).", ""]
    rows = [(k, f"{c['reskernel_all_depths']['cold']:.2f} s", f"{c['reskernel_single']['cold']:.2f} s",
             f"{c['reskernel_all_depths']['warm']:.2f} s", f"{c['reskernel_single']['warm']:.2f} s",
             f"{c['sweep_over_single_warm']:.1f}x", f"{c['neural_tangents_sweep_extrapolated_s']:.0f} s", f"{c['sweep_speedup']:.0f}x")
            for k, c in sw["cases"].items()]
    lines += table(["arch", "all depths cold", "single depth cold", "all depths warm", "single warm", "all/single warm",
                    "NT sweep (extrapolated)", "speedup"], rows)
    if roof and "copy_bytes_per_s" in roof:
        out_bytes = 4 * sw["depth"] * sw["n"] ** 2
        lines += [f"Both libraries return the NTK only (`get=\"ntk\"`). Write bound of the all-depths output "
                  f"({out_bytes / 1e9:.2f} GB of float32 at {roof['copy_bytes_per_s'] / 2e9:.2f} GB/s into fresh memory): "
                  f"{out_bytes / (roof['copy_bytes_per_s'] / 2):.2f} s. "
                  "Both reskernel columns are its default for float32 (interpolated from float64 tables, a table per "
                  "depth for all depths; no per-layer work per entry), so the ratio is the 100x larger output and "
                  "its lookups.", ""]
    return lines


def empirical(em):
    lines = [f"## Empirical NTK, n = {em['n']}, depth {em['depth']}, float32", ""]
    rows = []
    for k, c in em["cases"].items():
        impls = c["neural_tangents"]["implementations"]
        per = ", ".join(f"{i}: {v['warm']:.3f} s" if "warm" in v else f"{i}: failed" for i, v in impls.items())
        b = impls[str(c["nt_best_implementation"])]
        rows.append((k, f"{c['reskernel']['warm']:.3f} s", f"{c['reskernel']['cold']:.2f} s", c["nt_best_implementation"],
                     f"{b['warm']:.3f} s", f"{c['speedup_warm_vs_best']:.2f}x", per))
    return lines + table(["arch/width", "reskernel warm", "reskernel cold", "NT best impl", "NT best warm", "speedup warm",
                          "NT warm per impl"], rows)


def regression(rg):
    lines = [f"## Kernel regression (float64 Cholesky, scipy {rg['scipy']}), ResNet depth {rg['depth']} kernel", "",
             "The kernel column is the float32 NTK (`get=\"ntk\"`) copied to host and cast to float64 for the solver "
             "(min of 3 calls, the first one included); at n = 10,000 the cast writes 0.8 GB of fresh memory.", ""]
    rows = [(n, f"{c['kernel_s']:.2f} s", f"{c['cholesky_solve_s']:.2f} s", f"{c['gflops_cholesky']:.1f}", f"{c['max_residual']:.1e}")
            for n, c in rg["cases"].items()]
    return lines + table(["n", "kernel (reskernel, warm)", "Cholesky + solve", "GFlop/s", "residual"], rows)


def inference(inf):
    p = inf["cases"]["posterior"]
    lines = [f"## NNGP inference: {p['n_train']:,} MNIST training vs {p['n_test']:,} test images, {p['outputs']} outputs "
             "(benchmarks/bench_inference.py)", "", machine_line(inf["machine"]) + f", OPENBLAS_NUM_THREADS="
             f"{inf.get('openblas_num_threads') or 'unset'}", "",
             f"{p['model']}: NNGP posterior mean and marginal variances, {p['kernel_dtype']} kernels (reskernel's "
             f"default), one {p['solve_dtype']} Cholesky and solves (reskernel.inference). Cold: the process's first "
             "call, compilation included; warm: the fastest of the repeats.", ""]
    lines += table(["", "total", "kernels", "Cholesky + solves"],
                   [("cold", _secs(p["cold_s"]), _secs(p["cold_kernel_s"]), _secs(p["cold_solve_s"])),
                    ("warm", _secs(p["warm_s"]), _secs(p["warm_kernel_s"]), _secs(p["warm_solve_s"]))])
    lines += [f"Test accuracy {p['test_accuracy']:.4f}; posterior variances from {p['variance_min']:.3g} (median "
              f"{p['variance_median']:.3g}); condition number {p['cond']:.3g}.", ""]
    rows = [(c["precision"], c["settings"], c["models"], _secs(c["total_s"]), _secs(c["first_setting_s"]),
             _secs(c["per_setting_after_first_s"]), _secs(c["kernel_s"]), _secs(c["solve_s"]))
            for k, c in inf["cases"].items() if k.startswith("selection_")]
    if rows:
        c0 = next(c for k, c in inf["cases"].items() if k.startswith("selection_"))
        lines += [f"The selection study's grid phase (reskernel.studies.selection.unit_rows) for {c0['settings']} "
                  f"(w_var, b_var) settings of a depth-{c0['depth']} ReLU FFNet, NNGP and NTK each, {c0['n_train']:,} "
                  f"training and {c0['n_val']:,} validation MNIST images:", ""]
        lines += table(["kernels", "settings", "models", "total", "first setting (compiles)", "per further setting",
                        "kernels (sum)", "Cholesky + scores (sum)"], rows)
    return lines


def main():
    lines = ["# Benchmarks", "",
             "Generated by `python benchmarks/make_results.py` from `benchmarks/results/*.json` "
             "(all of it: `python benchmarks/run_all.py`).",
             "Timings are minima over repeats, float32, unit inputs (Gaussian, normalized), d = 784, NTK with every",
             "layer trained (neural-tangents' convention; reskernel = d x neural-tangents). Cold = a fresh process's first",
             "call, compilation included. Ratios are between runs of the same script on the same machine; the load",
             "average recorded with each result says how busy the machine was. Only CPU numbers are reported here.", ""]
    roof = load("roofline")
    if roof:
        lines += limits(roof)
    for path in sorted(C.RESULTS.glob("analytic*.json")):
        an = read(path)
        if an:
            lines += analytic(an, roof)
    act = load("activations")
    if act:
        lines += activations(act)
    notes = C.HERE / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text().strip(), ""]
    for name, fn in (("sweep", lambda r: sweep(r, roof)), ("empirical", empirical), ("regression", regression),
                     ("inference", inference)):
        res = load(name)
        if res:
            lines += fn(res)
    write_text_atomic(C.HERE / "RESULTS.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
