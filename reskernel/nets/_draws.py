"""Standard normal draws of a stack of layers, built one layer at a time, equal to
`jax.random.normal(key, shape, dtype)` entry for entry.

XLA generates `jax.random.normal(key, (L, m, m))` with ~3 arrays of its size alive at once (the
two 32-bit halves of the threefry hash and the result), so a deep network's initialization
needed 3x its parameters' memory (a width-1,024 ResNet at L = 1,000: 25 GB for 8.4 GB of weights).
With JAX's partitionable threefry (`jax_threefry_partitionable`, the default since jax 0.5) entry
i of the draw hashes the counter i of the row-major flattened index only, so layer l is the same
hash and the same uniform-to-normal map applied to the counters l * m * m + [0, m * m): it is
drawn here by `jax.random.normal` itself, under a key implementation whose bits are threefry's at
those counters, and written into the stack in place.
"""
import math

import jax
import jax.extend.random as jex
import jax.numpy as jnp
import numpy as np

__all__ = ["stacked_normal"]


def _offset_bits(key, bit_width, shape):
    """Threefry bits at counters offset + row-major index; key (3,) uint32 = (k1, k2, offset).
    The 64-bit counters' high word is 0: stacked_normal only draws stacks of < 2^32 entries."""
    lo = key[2] + jax.lax.iota(np.uint32, math.prod(shape))
    bits1, bits2 = jex.threefry2x32_p.bind(key[0], key[1], jnp.zeros_like(lo), lo)
    if bit_width == 64:
        return ((bits1.astype(np.uint64) << np.uint64(32)) | bits2.astype(np.uint64)).reshape(shape)
    bits = (bits1 ^ bits2).reshape(shape)
    return bits if bit_width == 32 else bits.astype({8: np.uint8, 16: np.uint16}[bit_width])


def _unused(*_):
    raise NotImplementedError("the offset-threefry key only draws bits")


_OFFSET_THREEFRY = jex.define_prng_impl(key_shape=(3,), seed=_unused, split=_unused, random_bits=_offset_bits,
                                        fold_in=_unused, name="offset_threefry", tag="ot")


def _exact() -> bool:
    """Whether layer-by-layer draws equal jax.random.normal's: partitionable threefry keys."""
    return bool(jax.config.jax_threefry_partitionable) and str(jax.config.jax_default_prng_impl) == "threefry2x32"


def stacked_normal(key, shape, dtype):
    """jax.random.normal(key, shape, dtype) for a raw uint32 key (2,), shape (L, ...) of fewer
    than 2^32 entries, float dtype, drawn one leading slice at a time into the result (memory:
    the result plus one slice's draw). Falls back to jax.random.normal itself otherwise, and
    where the draws could differ (module doc)."""
    shape = tuple(int(s) for s in shape)
    if not _exact() or len(shape) < 2 or not 0 < math.prod(shape) < 2 ** 32 or jnp.shape(key) != (2,):
        return jax.random.normal(key, shape, dtype)
    inner = math.prod(shape[1:])
    data = jnp.asarray(key, np.uint32)

    def draw(l):
        start = jnp.asarray(l, np.uint32) * np.uint32(inner)      # < 2^32
        k = jax.random.wrap_key_data(jnp.stack([data[0], data[1], start]), impl=_OFFSET_THREEFRY)
        return jax.random.normal(k, shape[1:], dtype)

    # The stack starts as layer 0 repeated, not as zeros: equal zero arrays of two stacks would be
    # one buffer to XLA, copied into each loop (half a ResNet's parameters more).
    first = jnp.broadcast_to(draw(0), shape)
    return jax.lax.fori_loop(1, shape[0], lambda l, out: jax.lax.dynamic_update_index_in_dim(out, draw(l), l, 0),
                             first)

