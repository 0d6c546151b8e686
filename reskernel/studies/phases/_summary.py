"""The tables that answer the study's questions, as Markdown, from the stored rows:

- depth_table: mean accuracy at each depth by distance to the critical line (abs(log chi_1) of
  the FFNet at the point, binned, on either side): how fast accuracy falls off the line;
- resnet_table: for each ResNet, how much accuracy the deepest net loses against depth 1, where
  the worst point is, and the FFNet's loss at the same points;
- point_table: every point of one activation and architecture, with its phase, chi_1, xi_c and
  the first depth at which accuracy fell by more than `fall` from depth 1;
- float32_table: float32 against float64 where both were run.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from ._plots import shown_rows

__all__ = ["BINS", "depth_table", "resnet_table", "point_table", "float32_table", "curves", "bin_of"]

# abs(log chi_1) edges of the distance bins (chi_1 = 0.86 / 1.16 and 0.61 / 1.65).
BINS = (0.15, 0.5)


def curves(rows, kernel="ntk"):
    """{(activation, arch, w_var, b_var): (first row, {depth: accuracy})} of the shown rows
    (float64 where run), accuracies of rows without one left out."""
    out = {}
    for r in shown_rows(rows, kernel):
        key = (r["activation"], r["arch"], r["w_var"], r["b_var"])
        entry = out.setdefault(key, (r, {}))
        if r["accuracy"] is not None:
            entry[1][r["depth"]] = r["accuracy"]
    return out


def bin_of(row, bins=BINS) -> str:
    """'on the line', or the side (chi_1 below or above 1) and the distance abs(log chi_1)."""
    if row["on_line"]:
        return "on the line"
    if not row["chi_1"]:
        return "no phase"
    d = math.log(row["chi_1"])
    side = "chi_1 < 1" if d < 0 else "chi_1 > 1"
    lo = 0.0
    for hi in bins:
        if abs(d) <= hi:
            return f"{side}, abs(log chi_1) {lo:g}-{hi:g}"
        lo = hi
    return f"{side}, abs(log chi_1) > {lo:g}"


def _order(key):
    name = key[-1]
    rank = 0 if name == "on the line" else (1 if "< 1" in name else 2)
    return key[:-1] + (rank, name)


def depth_table(rows, kernel="ntk", bins=BINS) -> str:
    """Mean test accuracy at each depth per (activation, arch, distance bin), with the number of
    points and the lowest accuracy at the deepest depth."""
    cs = curves(rows, kernel)
    depths = sorted({d for _, acc in cs.values() for d in acc})
    groups = defaultdict(list)
    for (act, arch, _, _), (r, acc) in cs.items():
        groups[(act, arch, bin_of(r, bins))].append(acc)
    lines = [f"| activation | arch | FFNet's chi_1 at the points | points | "
             f"{' | '.join(f'L = {d}' for d in depths)} | lowest at L = {depths[-1]} |",
             "|" + "---|" * (5 + len(depths))]
    for key in sorted(groups, key=_order):
        accs = groups[key]
        cells = []
        for d in depths:
            vals = [a[d] for a in accs if d in a]
            cells.append(f"{np.mean(vals):.3f}" if vals else "")
        last = [a[depths[-1]] for a in accs if depths[-1] in a]
        lowest = f"{min(last):.3f}" if last else ""
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {len(accs)} | {' | '.join(cells)} | {lowest} |")
    return "\n".join(lines)


def _drop(acc):
    """Accuracy at the first depth minus at the last (None if either is missing)."""
    if not acc:
        return None
    ds = sorted(acc)
    return acc[ds[0]] - acc[ds[-1]] if len(ds) > 1 else 0.0


def resnet_table(rows, kernel="ntk", hold=0.02) -> str:
    """Per (activation, arch): points, how many keep their first-depth accuracy to within `hold` at
    the last depth, the median and worst loss, the worst point with its FFNet phase, and the
    FFNet's median and worst loss over the same points."""
    cs = curves(rows, kernel)
    lines = [f"| activation | arch | points | holds (loss <= {hold:g}) | median loss | worst loss | worst point "
             "(w_var, b_var, FFNet phase) | FFNet median / worst loss there |", "|---|---|---|---|---|---|---|---|"]
    for act in dict.fromkeys(k[0] for k in cs):
        archs = sorted({k[1] for k in cs if k[0] == act}, key=lambda a: (a != "ffnet", a))
        for arch in archs:
            pts = {k[2:]: v for k, v in cs.items() if k[:2] == (act, arch)}
            drops = {p: _drop(acc) for p, (_, acc) in pts.items() if _drop(acc) is not None}
            if not drops:
                continue
            worst = max(drops, key=drops.get)
            ff = [_drop(cs[(act, "ffnet") + p][1]) for p in drops if (act, "ffnet") + p in cs]
            ff = [v for v in ff if v is not None]
            phase = pts[worst][0]["phase"]
            ffcell = f"{np.median(ff):.3f} / {max(ff):.3f}" if ff else ""
            lines.append(f"| {act} | {arch} | {len(drops)} | {sum(v <= hold for v in drops.values())} | "
                         f"{np.median(list(drops.values())):.3f} | {drops[worst]:.3f} | "
                         f"({worst[0]:.4g}, {worst[1]:g}, {phase}) | {ffcell} |")
    return "\n".join(lines)


def point_table(rows, activation, arch, kernel="ntk", fall=0.05) -> str:
    """Every point of (activation, arch): phase, chi_1, xi_c, accuracy per depth (* where only a
    float32 kernel was run; - where there is no accuracy, see the row's status), and L_fall, the
    first depth whose accuracy is more than `fall` below the first depth's."""
    cs = {k: v for k, v in curves(rows, kernel).items() if k[:2] == (activation, arch)}
    depths = sorted({d for _, acc in cs.values() for d in acc})
    single = {(r["w_var"], r["b_var"], r["depth"]) for r in shown_rows(rows, kernel)
              if r["precision"] == "float32" and r["activation"] == activation and r["arch"] == arch}
    lines = [f"| w_var | b_var | phase | chi_1 | xi_c | {' | '.join(f'L = {d}' for d in depths)} | L_fall |",
             "|" + "---|" * (6 + len(depths))]
    for (_, _, w, b), (r, acc) in sorted(cs.items(), key=lambda t: (t[0][3], t[0][2])):
        fell = [d for d in depths if d in acc and depths[0] in acc and acc[d] < acc[depths[0]] - fall]
        # xi_c = -1 / log(chi_c): infinite (None) where chi_c >= 1, ~1e16 on the line (chi_c = 1 - eps)
        big = r["phase"] is not None and (r["xi_c"] is None or r["xi_c"] > 1e6)
        xi = "inf" if big else (f"{r['xi_c']:.3g}" if r["xi_c"] else "")
        chi = f"{r['chi_1']:.4f}" if r["chi_1"] is not None else ""
        name = f"**{w:.4g}**" if r["on_line"] else f"{w:.4g}"
        lines.append(f"| {name} | {b:g} | {r['phase'] or ''} | {chi} | {xi} | "
                     + " | ".join((f"{acc[d]:.3f}" + ("*" if (w, b, d) in single else "")) if d in acc else "-"
                                  for d in depths)
                     + f" | {fell[0] if fell else '> ' + str(depths[-1]) if acc else ''} |")
    return "\n".join(lines)


def float32_table(rows, kernel="ntk", tol=0.01) -> str:
    """Where float32 and float64 were both run: per (activation, arch, depth), points, the largest
    |accuracy difference|, the largest kernel_err and smallest kernel_spread (float64), and the
    points where float32 differs by more than `tol` or has no accuracy."""
    sel = [r for r in rows if r["kernel"] == kernel]
    f64 = {(r["activation"], r["arch"], r["w_var"], r["b_var"], r["depth"]): r for r in sel
           if r["precision"] == "float64"}
    groups = defaultdict(list)
    for r in sel:
        key = (r["activation"], r["arch"], r["w_var"], r["b_var"], r["depth"])
        if r["precision"] == "float32" and key in f64:
            groups[(key[0], key[1], key[4])].append((r, f64[key]))
    lines = ["| activation | arch | L | points | max abs(acc32 - acc64) | max kernel_err | min spread (float64) | "
             f"float32 off by > {tol:g} or failed at (w_var, b_var) |", "|---|---|---|---|---|---|---|---|"]
    for key in sorted(groups, key=lambda k: (k[0], k[1] != "ffnet", k[1], k[2])):
        pairs = groups[key]
        diffs = [abs(a["accuracy"] - b["accuracy"]) for a, b in pairs
                 if a["accuracy"] is not None and b["accuracy"] is not None]
        errs = [a["kernel_err"] for a, _ in pairs if a["kernel_err"] is not None]
        spreads = [b["kernel_spread"] for _, b in pairs if b["kernel_spread"] is not None]
        bad = [f"({a['w_var']:.4g}, {a['b_var']:g})" for a, b in pairs
               if a["accuracy"] is None or (b["accuracy"] is not None and abs(a["accuracy"] - b["accuracy"]) > tol)]
        cells = [f"{max(diffs):.3f}" if diffs else "-", f"{max(errs):.2g}" if errs else "-",
                 f"{min(spreads):.2g}" if spreads else "-", ", ".join(bad) or "none"]
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {len(pairs)} | {' | '.join(cells)} |")
    return "\n".join(lines)
