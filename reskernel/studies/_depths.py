"""Kernels at several depths with a fallback: all depths in one call, else each depth alone."""

__all__ = ["by_depth"]


def by_depth(at, depths) -> dict:
    """at(list(depths)), a dict {depth: entry}; where that call raises ValueError (e.g. the deepest
    kernels leave the dtype's range), at([d]) for each depth alone, the message of a depth's own
    ValueError standing for its entry: {depth: entry or why not}. One recursion to the deepest
    serves every depth in the common case; the others are kept when only some fail."""
    try:
        return at(list(depths))
    except ValueError:
        out = {}
        for d in depths:
            try:
                out.update(at([d]))
            except ValueError as e:
                out[int(d)] = str(e)
        return out
