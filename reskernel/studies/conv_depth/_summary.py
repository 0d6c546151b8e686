"""Markdown tables of the convolutional depth study: accuracy per (arch, readout, kernel) at chosen
depths, its best depth and its drop from the best to the deepest."""
from ._spec import READOUTS, TABLE_DEPTHS

__all__ = ["table", "drop"]


def _order(key):
    arch, readout, kernel = key
    return (arch != "ffnet", arch, READOUTS.index(readout), kernel)


def _groups(rows):
    groups = {}
    for r in rows:
        groups.setdefault((r["arch"], r["readout"], r["kernel"]), []).append(r)
    return {k: groups[k] for k in sorted(groups, key=_order)}


def drop(rows) -> tuple:
    """(best accuracy, its depth, accuracy at the deepest depth) of one (arch, readout, kernel)."""
    ok = sorted((r for r in rows if r.get("test_accuracy") is not None), key=lambda r: r["depth"])
    if not ok:
        return None, None, None
    best = max(ok, key=lambda r: (r["test_accuracy"], -r["depth"]))
    return best["test_accuracy"], best["depth"], ok[-1]["test_accuracy"]


def table(rows, depths=TABLE_DEPTHS) -> str:
    """One markdown table per data set in `rows`: a line per (arch, readout, kernel), accuracy at
    `depths` (those stored), the best over every depth 1..L with its depth, and best - deepest."""
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        sel = [r for r in rows if r["dataset"] == ds]
        stored = sorted({r["depth"] for r in sel})
        shown = [d for d in depths if d in stored] or stored
        r0 = sel[0]
        out.append(f"**{ds}**: {r0['n_train']} train, {r0['n_test']} test, images {r0['image_size']}x"
                   f"{r0['image_size']}x3, depths 1..{max(r['max_depth'] for r in sel)}\n")
        out.append(f"| arch | readout | kernel | {' | '.join(f'L = {d}' for d in shown)} | best (L) | "
                   f"best - deepest |")
        out.append("|---|---|---|" + "---|" * (len(shown) + 2))
        for (arch, readout, kernel), g in _groups(sel).items():
            at = {r["depth"]: r for r in g}
            cells = ["" if d not in at else ("fail" if at[d]["test_accuracy"] is None else
                                             f"{at[d]['test_accuracy']:.3f}") for d in shown]
            best, where, last = drop(g)
            tail = "- | -" if best is None else f"{best:.3f} ({where}) | {best - last:+.3f}"
            out.append(f"| {arch} | {readout} | {kernel.upper()} | {' | '.join(cells)} | {tail} |")
        out.append("")
    return "\n".join(out)
