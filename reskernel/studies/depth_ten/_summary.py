"""Markdown tables of the depth study: kernel test accuracy per (arch, kernel) at each depth, the
depth where each starts to degrade, and the trained networks beside their NTK counterparts."""
__all__ = ["kernel_table", "net_table", "degradation_depth"]


def _order(r):
    return (r["arch"] != "ffnet", r["arch"], r["kernel"])


def degradation_depth(rows, *, drop: float = 0.01):
    """The smallest depth after the best one whose accuracy is more than `drop` below the best
    (None if none is): where a model 'starts to degrade'. rows: one (arch, kernel)'s rows."""
    ok = sorted((r for r in rows if r.get("test_accuracy") is not None), key=lambda r: r["depth"])
    if not ok:
        return None
    best = max(ok, key=lambda r: r["test_accuracy"])
    for r in ok:
        if r["depth"] > best["depth"] and r["test_accuracy"] < best["test_accuracy"] - drop:
            return r["depth"]
    return None


def kernel_table(rows, *, drop: float = 0.01) -> str:
    depths = sorted({r["depth"] for r in rows})
    groups = {}
    for r in sorted(rows, key=_order):
        groups.setdefault((r["arch"], r["kernel"]), []).append(r)
    lines = [f"| arch | kernel | {' | '.join(f'L = {d:,}' for d in depths)} | degrades from L = |",
             "|---|---|" + "---|" * (len(depths) + 1)]
    for (arch, kernel), sel in groups.items():
        at = {r["depth"]: r for r in sel}
        cells = []
        for d in depths:
            r = at.get(d)
            if r is None:
                cells.append("")
            elif r.get("test_accuracy") is None:
                cells.append("fail")
            else:
                cells.append(f"{r['test_accuracy']:.3f}")
        deg = degradation_depth(sel, drop=drop)
        lines.append(f"| {arch} | {kernel.upper()} | {' | '.join(cells)} | {'-' if deg is None else f'{deg:,}'} |")
    return "\n".join(lines)


def net_table(rows) -> str:
    lines = ["| arch | depth | width | lr | steps | trained net (centred) | NTK same steps | NTK t = inf | "
             "net train loss (first -> last) | wall s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["arch"] != "ffnet", r["arch"], r["depth"], r["seed"])):
        lines.append(f"| {r['arch']} | {r['depth']} | {r['width']} | {r['lr']:.3g} | {r['steps'][-1]} | "
                     f"{r['net_accuracy'][-1]:.3f} | {r['ntk_accuracy'][-1]:.3f} | {r['ntk_inf_accuracy']:.3f} | "
                     f"{r['net_train_loss'][0]:.1f} -> {r['net_train_loss'][-1]:.2f} | {r['wall_s']:.0f} |")
    return "\n".join(lines)
