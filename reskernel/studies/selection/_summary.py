"""Markdown tables from the study's rows:

- chosen_table: each (criterion, scope)'s model with its validation and test scores;
- depth_table: the best validation accuracy over (w_var, b_var) per (arch, activation, kernel)
  at each depth;
- lee_table: Lee et al.'s models, measured beside the published accuracy.
"""
from ._choose import grid_order

__all__ = ["chosen_table", "depth_table", "lee_table", "model_name"]


def _f(v, fmt=".4f"):
    return "" if v is None else format(v, fmt)


def model_name(r) -> str:
    """'ffnet relu 20-1.45-0.28 NNGP' (Lee et al.'s depth-sigma_w^2-sigma_b^2)."""
    return f"{r['arch']} {r['activation']} {r['depth']}-{r['w_var']:g}-{r['b_var']:g} {r['kernel'].upper()}"


def chosen_table(chosen) -> str:
    lines = ["| criterion | scope | models | chosen (arch act L-w_var-b_var kernel) | val. accuracy | val. MSE | "
             "log marg. lik. | test accuracy | test MSE |", "|---|---|---|---|---|---|---|---|---|"]
    for c in chosen:
        lines.append(f"| {c['criterion']} | {c['scope']} | {c['candidates']} | {model_name(c)} | "
                     f"{_f(c['val_accuracy'])} | {_f(c['val_mse'])} | {_f(c['lml'], '.1f')} | "
                     f"{_f(c.get('test_accuracy'))} | {_f(c.get('test_mse'))} |")
    return "\n".join(lines)


def depth_table(rows) -> str:
    ok = [r for r in rows if r["status"] == "ok" and r["val_accuracy"] is not None]
    depths = sorted({r["depth"] for r in rows})
    groups = {}
    for r in sorted(ok, key=grid_order):
        groups.setdefault((r["arch"], r["activation"], r["kernel"]), []).append(r)
    lines = [f"| arch | activation | kernel | {' | '.join(f'L = {d}' for d in depths)} |",
             "|" + "---|" * (3 + len(depths))]
    for (arch, act, kname), sel in groups.items():
        cells = []
        for d in depths:
            acc = [r["val_accuracy"] for r in sel if r["depth"] == d]
            cells.append(f"{max(acc):.3f}" if acc else "-")
        lines.append(f"| {arch} | {act} | {kname.upper()} | {' | '.join(cells)} |")
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines.append(f"\n{len(failed)} model(s) without a score (see their status), e.g. {model_name(failed[0])}: "
                     f"{failed[0]['status']}")
    return "\n".join(lines)


def lee_table(rows) -> str:
    lines = ["| data | model (depth-sigma_w^2-sigma_b^2) | training images | test images | test accuracy | "
             "published | difference | test MSE |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        diff = "" if r.get("difference") is None else f"{100 * r['difference']:+.2f} points"
        lines.append(f"| {r['dataset']} | {r['activation']} {r['kernel'].upper()} {r['depth']}-{r['w_var']:g}-"
                     f"{r['b_var']:.2f} | {r['n_train']:,} | {r['n_test']:,} | {_f(r['test_accuracy'])} | "
                     f"{r['published']:.4f} | {diff} | {_f(r['test_mse'])} |")
    return "\n".join(lines)
