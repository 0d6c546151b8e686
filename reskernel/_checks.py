"""Input validation at the public boundary, before tracing.

JAX is imported inside the functions that need it: reskernel.data validates its
flags here and stays a NumPy-only import.
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["inputs", "real_array", "width", "positive_int", "concrete", "traced", "boolean", "float_dtype"]

# The floating dtypes reskernel computes in. Half precision (float16, bfloat16) has a
# 3-4 digit mantissa and overflows at 6.5e4: kernels that grow with depth or with the
# input norms would be silently wrong or infinite.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def concrete(x):
    """x as a NumPy array, or None when x is a tracer (checks are skipped under jit)."""
    import jax

    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def traced(*xs) -> bool:
    """True when any of xs is a tracer (inside jit, grad, vmap of the caller)."""
    import jax

    return any(isinstance(x, jax.core.Tracer) for x in xs)


def float_dtype(name, dtype) -> np.dtype:
    """`dtype` as a NumPy dtype if it is float32 or float64; TypeError naming `name` otherwise."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in FLOAT_DTYPES:
        got = dtype if dt is None else dt
        raise TypeError(f"{name} must be float32 or float64, got {got}"
                        + ("; cast with .astype(np.float32)" if dt is not None and dt.kind in "fV" else ""))
    return dt


def real_array(name, x):
    """x as an array of real numbers: host inputs as NumPy arrays, jax.Arrays and tracers kept."""
    import jax

    if x is None or isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be an array of real numbers, got {type(x).__name__}")
    if not isinstance(x, (jax.Array, np.ndarray)):
        try:
            x = np.asarray(x)
        except ValueError as e:
            if "inhomogeneous" in str(e) or "sequence" in str(e):
                raise ValueError(f"{name} is ragged (rows of different lengths); it must be a rectangular "
                                 "array, such as shape (n, d)") from None
            raise TypeError(f"{name} must be an array of real numbers: {e}") from None
        except TypeError as e:
            raise TypeError(f"{name} must be an array of real numbers: {e}") from None
    dt = np.dtype(x.dtype)
    if dt.kind == "c":
        raise TypeError(f"{name} must be real, got dtype {dt}")
    if dt.kind == "f" or (dt.kind == "V" and "float" in dt.name):  # ml_dtypes' bfloat16, float8_*
        if dt not in FLOAT_DTYPES:
            raise TypeError(f"{name} has dtype {dt}; reskernel computes in float32 or float64 (half precision "
                            "cannot hold the kernels' range and accuracy): cast it with x.astype(np.float32)")
    elif dt.kind not in "biu":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {dt}")
    return x


def _float_dtype(*xs):
    import jax.numpy as jnp

    dtype = jnp.result_type(*xs)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    return dtype


def _matrix(name, x, dtype):
    """x validated and cast to dtype: a NumPy array for host inputs (a jax.Array stays one; a
    tracer is checked for shape only). Host inputs are checked in NumPy and handed to the jitted
    kernels as they are: `jnp.asarray` of a NumPy array stages a conversion that costs a
    compilation (0.1 s) on the first call."""
    arr = x
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
    """Validated (x1, x2) as floating arrays of a common dtype (float32 or float64); x2 may be None.

    Integer and boolean inputs are cast to the default float dtype; float16/bfloat16
    (TypeError), complex (TypeError) and ragged nested lists (ValueError) are refused.
    """
    x1 = real_array("x1", x1)
    x2 = None if x2 is None else real_array("x2", x2)
    dtype = _float_dtype(*[x for x in (x1, x2) if x is not None])
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
