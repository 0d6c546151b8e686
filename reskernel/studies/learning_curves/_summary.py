"""Markdown table of the learning curves: per scope, the chosen model's test accuracy at each size
(and, below it, the chosen model in Lee et al.'s depth-sigma_w^2-sigma_b^2 form with its ridge)."""
__all__ = ["curve_table"]


def _order(scope):
    return (scope == "all", scope.split(" ")[0] != "ffnet", scope)


def curve_table(rows, *, models: bool = True) -> str:
    """rows: curve rows (n_train, scope, test_accuracy, arch, depth, w_var, b_var, noise, kernel)."""
    sizes = sorted({r["n_train"] for r in rows})
    scopes = sorted({r["scope"] for r in rows}, key=_order)
    at = {(r["scope"], r["n_train"]): r for r in rows}
    lines = [f"| scope | {' | '.join(f'n = {n:,}' for n in sizes)} |", "|---|" + "---|" * len(sizes)]
    for s in scopes:
        cells = []
        for n in sizes:
            r = at.get((s, n))
            acc = None if r is None else r.get("test_accuracy")
            cells.append("-" if acc is None else f"{acc:.4f}")
        lines.append(f"| {s} | {' | '.join(cells)} |")
    if models:
        lines += ["", f"| scope (chosen: L-w_var-b_var, ridge) | {' | '.join(f'n = {n:,}' for n in sizes)} |",
                  "|---|" + "---|" * len(sizes)]
        for s in scopes:
            cells = []
            for n in sizes:
                r = at.get((s, n))
                cells.append("-" if r is None else
                             (f"{r['arch']} {r['kernel'].upper()} " if s == "all" else "")
                             + f"{r['depth']}-{r['w_var']:g}-{r['b_var']:g}, {r['noise']:g}")
            lines.append(f"| {s} | {' | '.join(cells)} |")
    return "\n".join(lines)
