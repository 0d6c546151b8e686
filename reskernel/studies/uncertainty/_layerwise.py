"""A full-batch gradient-descent step of a deep k-output ResNet that updates each block's weights
in place as the backward pass reaches it, so that no gradient the size of the parameters is ever
held: the step needs the parameters once, plus the blocks' inputs (L, n, m).

It is the same step as `_trainer._step` (theta <- theta - lr dL/dtheta on
L = (1/2) sum |f(x) - y|^2, every gradient taken at the old parameters): block l's gradients are
taken from its stored input x_{l-1} and the cotangent of x_l, with W_l and V_l still unchanged,
and only then are W_l and V_l overwritten; the blocks below are updated after. The arithmetic
of every block is networks.resnet_block's, differentiated by jax.vjp.

Memory (XLA's analysis of the step, parameters donated; a width-1,024 ResNet, L = 100, 100
training images): jax.grad's step holds 1.15 copies of the parameters beyond them (their gradient
and its loop buffers), this one 0.07 (the blocks' inputs and one block's arrays). Measured by
`jax.jit(step, donate_argnums=0).lower(...).compile().memory_analysis()`.
"""
import jax
import jax.numpy as jnp

from ...nets.networks import resnet_block, resnet_features, resnet_stacks, resnet_stem

__all__ = ["resnet_step"]

_STEM = ("embed", "embed_bias")
_HEAD = ("readout", "readout_bias")


def resnet_step(model, names: tuple, lr: float):
    """step(moving, fixed, x (n, d), y (n, k)) -> moving after one gradient-descent step of the
    k-output ResNet `model` (a _trainer.MultiOutput), moving = the params named in `names`,
    fixed = the others (_trainer._split). Pure JAX; jit it with moving donated."""
    arch, m = model.arch, model.width
    block = resnet_block(arch, m)

    def step(moving, fixed, x, y):
        p = {**moving, **fixed}
        dtype = p["readout"].dtype
        a, b = resnet_stacks(arch, p, dtype)
        zero = jnp.zeros((1, 1), dtype)
        depth = a.shape[0]
        stem = {k: p[k] for k in _STEM if k in p}
        x0, stem_vjp = jax.vjp(lambda s: resnet_stem(arch, m, s, x), stem)
        xL, xs = jax.lax.scan(lambda xl, inp: (block(xl, inp + (zero, zero))[0], xl), x0, (p["W"], p["V"], a, b))
        head = {k: p[k] for k in _HEAD if k in p}
        out, head_vjp = jax.vjp(lambda h, xl: model.readout(h, resnet_features(arch, xl)), head, xL)
        g_head, ct = head_vjp(out - y)      # d/d out of (1/2) sum |out - y|^2

        take = lambda t, l: jax.lax.dynamic_index_in_dim(t, l, keepdims=False)   # noqa: E731
        put = lambda t, new, l: jax.lax.dynamic_update_index_in_dim(t, new, l, 0)   # noqa: E731

        def back(i, carry):
            # Block l+1's new weights (pending) are written first and block l's are read from the
            # written arrays, so every read follows the write and XLA updates them in place (a
            # write after a read of the same array makes it copy the whole stack each block).
            ct, stacks, pending, done = carry
            l = depth - 1 - i
            stacks = tuple(put(t, new, done) for t, new in zip(stacks, pending))
            w, v, bl = (take(t, l) for t in stacks)
            _, vjp = jax.vjp(lambda xl, w, v, bl: block(xl, (w, v, a[l], bl, zero, zero))[0], xs[l], w, v, bl)
            ct, gw, gv, gb = vjp(ct)
            pending = tuple(old - lr * g if name in names else old
                            for name, old, g in (("W", w, gw), ("V", v, gv), ("b", bl, gb)))
            return ct, stacks, pending, l

        stacks = (p["W"], p["V"], b)
        last = depth - 1   # the first write puts block L's own weights back: a no-op
        ct0, stacks, pending, done = jax.lax.fori_loop(
            0, depth, back, (ct, stacks, tuple(take(t, last) for t in stacks), last))
        w_all, v_all, b_all = (put(t, new, done) for t, new in zip(stacks, pending))
        (g_stem,) = stem_vjp(ct0)
        new = dict(moving)
        new.update({k: val for k, val in (("W", w_all), ("V", v_all), ("b", b_all)) if k in names})
        for grads in (g_stem, g_head):
            new.update({k: moving[k] - lr * g for k, g in grads.items() if k in names})
        return new

    return step

