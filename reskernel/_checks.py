"""Input validation at the public boundary, before tracing."""
from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["inputs", "width", "positive_int", "concrete", "boolean"]


def concrete(x):
    """x as a NumPy array, or None when x is a tracer (checks are skipped under jit)."""
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def traced(*xs) -> bool:
    """True when any of xs is a tracer (inside jit, grad, vmap of the caller)."""
    return any(isinstance(x, jax.core.Tracer) for x in xs)


def _float_dtype(*xs):
    dtype = jnp.result_type(*xs)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    return dtype


def _matrix(name, x, dtype):
    """x validated and cast to dtype: a NumPy array for host inputs (a jax.Array stays one; a
    tracer is checked for shape only). Host inputs are checked in NumPy and handed to the jitted
    kernels as they are: `jnp.asarray` of a NumPy array stages a conversion that costs a
    compilation (0.1 s) on the first call."""
    if x is None or isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be an array of shape (n, d), got {type(x).__name__}")
    if not isinstance(x, (jax.Array, np.ndarray)):
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name} must be an array of shape (n, d): {e}") from None
        if x.dtype == object:
            raise TypeError(f"{name} must be an array of shape (n, d) of numbers, got dtype object")
    arr = x
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must have rank 2, shape (n, d); got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must have at least one row and one feature; got shape {arr.shape}")
    if arr.dtype != dtype:
        arr = arr.astype(dtype)
    values = concrete(arr)
    if values is not None:
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            raise ValueError(f"{name} has non-finite entries (first in row {int(np.argmax(bad))})")
        zero = ~(np.abs(values) > 0).any(axis=1)
        if zero.any():
            raise ValueError(f"{name} has zero-norm rows (first is row {int(np.argmax(zero))}); "
                             "the kernels are defined for nonzero inputs")
    return arr


def inputs(x1, x2=None):
    """Validated (x1, x2) as floating arrays of a common dtype; x2 may be None."""
    given = [x for x in (x1, x2) if x is not None]
    for name, x in zip(("x1", "x2"), (x1, x2)):
        if isinstance(x, (str, bytes)):
            raise TypeError(f"{name} must be an array of shape (n, d), got {type(x).__name__}")
    dtype = _float_dtype(*given) if given else jnp.result_type(float)
    x1 = _matrix("x1", x1, dtype)
    if x2 is None:
        return x1, None
    x2 = _matrix("x2", x2, dtype)
    if x1.shape[1] != x2.shape[1]:
        raise ValueError(f"x1 and x2 must have the same feature dimension; got {x1.shape[1]} and {x2.shape[1]}")
    return x1, x2


def positive_int(name, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= 1, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def width(value) -> int:
    return positive_int("width", value)


def boolean(name, value) -> bool:
    """A real boolean (Python bool or NumPy bool); strings such as "no" and numbers are refused."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
