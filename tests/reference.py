"""An independent float64 reference: the unnormalized recursions of
docs/conventions.md, one pair of inputs at a time, in plain Python floats."""
import math

import numpy as np


def _k0(r):
    r = min(1.0, max(-1.0, r))
    return (math.pi - math.acos(r)) / math.pi


def _k1(r):
    r = min(1.0, max(-1.0, r))
    return (math.sqrt(max(0.0, 1 - r * r)) + (math.pi - math.acos(r)) * r) / math.pi


def ffnet_pair(x, y, depth, trained="hidden"):
    """(nngp, ntk) of FeedForward(depth) for one pair; K_l and Theta_l unnormalized."""
    kxx, kyy, kxy = float(x @ x), float(y @ y), float(x @ y)
    theta = 0.0
    for _ in range(depth):
        rho = kxy / math.sqrt(kxx * kyy)
        theta = (theta + kxy) * _k0(rho)
        kxy = math.sqrt(kxx * kyy) * _k1(rho)
        # diagonals: K(x, x) k1(1) = K(x, x)
    return kxy, theta + (kxy if trained == "all" else 0.0)


def resnet_pair(x, y, scales, trained="hidden"):
    """(nngp, ntk) of a ResNet with branch scales `scales` for one pair."""
    dx, dy, kxy = float(x @ x), float(y @ y), float(x @ y)
    k0_in = kxy
    theta, back = 0.0, 1.0
    for a in scales:
        rho = kxy / math.sqrt(dx * dy)
        c0, c1 = _k0(rho), _k1(rho)
        theta = theta * (1 + a * a * c0) + a * a * math.sqrt(dx * dy) * (rho * c0 + c1)
        back *= 1 + a * a * c0
        kxy = kxy + a * a * math.sqrt(dx * dy) * c1
        dx, dy = dx * (1 + a * a), dy * (1 + a * a)
    if trained == "all":
        theta += kxy + back * k0_in
    return kxy, theta


def gram(pair_fn, x1, x2, *args, **kw):
    n1, n2 = len(x1), len(x2)
    nngp, ntk = np.zeros((n1, n2)), np.zeros((n1, n2))
    for i in range(n1):
        for j in range(n2):
            nngp[i, j], ntk[i, j] = pair_fn(np.asarray(x1[i], float), np.asarray(x2[j], float), *args, **kw)
    return nngp, ntk


def ffnet_pair_mp(x, y, depth, trained="hidden", dps=40):
    """(nngp, ntk) of FeedForward(depth) for one pair in mpmath at `dps` digits: the same
    recursion as `ffnet_pair`, exact to far below float64 rounding even at tiny angles."""
    import mpmath

    with mpmath.workdps(dps):
        x = [mpmath.mpf(float(v)) for v in x]
        y = [mpmath.mpf(float(v)) for v in y]
        kxx, kyy, kxy = (mpmath.fsum(a * b for a, b in zip(p, q)) for p, q in ((x, x), (y, y), (x, y)))
        scale, theta = mpmath.sqrt(kxx * kyy), mpmath.mpf(0)
        for _ in range(depth):
            rho = kxy / scale
            angle = mpmath.acos(rho)
            theta = (theta + kxy) * (mpmath.pi - angle) / mpmath.pi
            kxy = scale * (mpmath.sqrt(1 - rho * rho) + (mpmath.pi - angle) * rho) / mpmath.pi
        return float(kxy), float(theta + (kxy if trained == "all" else 0))
