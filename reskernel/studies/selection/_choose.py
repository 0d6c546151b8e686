"""Choosing models from the grid's rows: a pure function of the validation scores and the
training marginal likelihoods (the rows hold nothing else about the data), so test labels
cannot enter.

Criteria:
  val_accuracy  the highest validation accuracy; ties go to the lower validation MSE, then to the
                first model in grid order (arch, activation, w_var, b_var, kernel, depth);
  lml           (NNGP only) the highest log marginal likelihood of the training targets with the
                closed-form amplitude; ties to the first in grid order.
Scopes: "all" (every arch and kernel of the grid; for lml every arch's NNGP) and one per
(arch, kernel) pair ("ffnet ntk", "resnet:1 nngp", ...).
"""
from ._spec import KERNEL_ORDER, MODEL_FIELDS, model_of

__all__ = ["CRITERIA", "choose", "grid_order", "candidates"]

CRITERIA = ("val_accuracy", "lml")


def grid_order(row) -> tuple:
    """The sort key of a row's model in grid order."""
    m = model_of(row)
    kernel = KERNEL_ORDER.index(m.kernel) if m.kernel in KERNEL_ORDER else len(KERNEL_ORDER)
    return (m.arch != "ffnet", m.arch, m.activation, m.w_var, m.b_var, kernel, m.depth)


def _score(row, criterion):
    if criterion == "val_accuracy":
        return (row["val_accuracy"], -row["val_mse"])
    return (row["lml"],)


def candidates(rows, criterion, scope) -> list:
    """The rows `criterion` may choose from in `scope`, in grid order (solved rows only)."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    field = "val_accuracy" if criterion == "val_accuracy" else "lml"
    out = [r for r in rows if r.get("status") == "ok" and r.get(field) is not None]
    if criterion == "lml":
        out = [r for r in out if r["kernel"] == "nngp"]
    if scope != "all":
        arch, kernel = scope.split(" ")
        out = [r for r in out if r["arch"] == arch and r["kernel"] == kernel]
    return sorted(out, key=grid_order)


def _scopes(rows, criterion):
    pairs = sorted({(r["arch"], r["kernel"]) for r in rows if criterion != "lml" or r["kernel"] == "nngp"},
                   key=lambda p: (p[0] != "ffnet", p[0], KERNEL_ORDER.index(p[1]) if p[1] in KERNEL_ORDER else 9))
    return ["all"] + [f"{a} {k}" for a, k in pairs]


def choose(rows, criteria=CRITERIA, *, keep=()) -> list:
    """One choice per (criterion, scope) that has candidates: dicts with criterion, scope,
    candidates (how many models it chose among), the model's fields (MODEL_FIELDS, gamma,
    in_var), its validation scores (val_accuracy, val_mse, lml, amplitude) and the chosen row's
    fields named in `keep` (e.g. "noise" where the rows differ in it; equal scores go to the
    first such row in the order given)."""
    out = []
    for criterion in criteria:
        for scope in _scopes(rows, criterion):
            cands = candidates(rows, criterion, scope)
            if not cands:
                continue
            best = max(cands, key=lambda r: _score(r, criterion))   # max keeps the first of equals
            out.append({"criterion": criterion, "scope": scope, "candidates": len(cands),
                        **{k: best[k] for k in MODEL_FIELDS + ("gamma", "in_var")},
                        **{k: best.get(k) for k in ("val_accuracy", "val_mse", "lml", "amplitude")},
                        **{k: best.get(k) for k in keep}})
    return out
