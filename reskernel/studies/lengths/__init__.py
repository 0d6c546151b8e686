"""Activation-length statistics of finite-width ReLU nets at initialization
(Hanin & Rolnick, "How to start training: the effect of initialization and
architecture", NeurIPS 2018): measurement beside exact theory.

Networks (one input x_0 in R^{n_0}, no biases, all weights i.i.d. Gaussian):
  FFNet:   x_j = relu(W_j x_{j-1}),  W_j: (n_j, n_{j-1}) ~ N(0, sigma_j^2),  j = 1..d.
  ResNet:  x_l = x_{l-1} + eta_l N_l(x_{l-1}),  constant width n,  l = 1..d, with the block
    "relu"   Hanin & Rolnick's module, a fully connected ReLU net (here one layer):
             N_l(x) = relu(W_l x),  W_l: (n, n) ~ N(0, sigma_l^2).  N_l >= 0, so the branch
             is positively correlated with the stream: the mean length grows like
             exp(c sum_l eta_l), and sum_l eta_l < inf is the condition that avoids FM1.
    "linear" the branch of reskernel.ResNet (Huang et al.): N_l(x) = V_l relu(W_l x),
             V_l: (n, n) ~ N(0, 1/n).  The branch is uncorrelated with the stream and only
             sum_l eta_l^2 matters (summable eta_l is sufficient, eta_l = 1 explodes).
Lengths M_j = |x_j|^2 / n_j.  FM1: E[M_d] explodes or vanishes exponentially in d.
FM2: Hanin & Rolnick's empirical variance across layers,
  Var^[M] = (1/d) sum_{j=1..d} M_j^2 - ((1/d) sum_{j=1..d} M_j)^2, grows with depth.

Exact theory (Gaussian weights).  Given x_{j-1}, W_j x_{j-1} = sigma_j |x_{j-1}| g with
g ~ N(0, I) independent of the past, so every block multiplies |x|^2 by a fresh factor:
  FFNet:   M_j = M_{j-1} c_j Y_j,  c_j = n_{j-1} sigma_j^2 / 2,  Y_j = (2/n_j) sum_i relu(g_i)^2
           = (2/n_j) chi^2_K with K ~ Binomial(n_j, 1/2);  E Y = 1,  E Y^2 = 1 + 5/n_j
           (E relu(g)^2 = 1/2, E relu(g)^4 = 3/2).  Hence
           E[M_d] = M_0 prod_j c_j,  E[M_d^2] = M_0^2 prod_j c_j^2 (1 + 5/n_j),
           E[M_d^2] / E[M_d]^2 = prod_{j=1..d} (1 + 5/n_j) <= exp(5 sum_j 1/n_j), for any sigma_j.
  "linear" ResNet: M_l = M_{l-1} Z_l,  Z_l = 1 + 2 a sqrt(S) u + a^2 S (u^2 + R),
           a^2 = eta_l^2 sigma_l^2 / n, S ~ sum of n relu(g)^2, u ~ N(0, 1), R ~ chi^2_{n-1}:
           E Z = 1 + e,  E Z^2 = 1 + 2e + 4e/n + e^2 (1 + 5/n)(1 + 2/n),  e = eta_l^2 n sigma_l^2 / 2.
  "relu" ResNet: with c = n sigma_l^2 / 2 and m = (1/n) sum_i x_i (the mean coordinate),
           E[M_l | x_{l-1}] = M + 2 eta_l m sqrt(c M / pi) + eta_l^2 c M,
           E[m_l | x_{l-1}] = m + eta_l sqrt(c M / pi)   (exact).
           m is not a function of M, so there is no exact closed recursion for E[M_l]; we give
           (i) its n -> inf limit, the same recursion for deterministic (M, m), exact at l = 1;
           (ii) closed-form bounds from -sqrt(M) <= m <= sqrt(M) (and m >= 0 when m_0 >= 0):
                M_0 prod (1 + eta^2 c) <= E[M_l] <= M_0 prod (1 + 2 eta sqrt(c/pi) + eta^2 c);
           (iii) the pathwise bound M_l <= M_{l-1} (1 + eta_l sigma_l sqrt(S_l))^2 with independent
                S_l, so E[M_l^2] <= M_0^2 prod E(1 + eta sigma sqrt(S))^4.

Modules, one idea each: `_specs` (LengthSpec and its builders), `_simulation` (Monte Carlo),
`_theory` (exact moments, bounds), `_summary` (measured vs theory), `_plot` (the figure),
`_study` (the standard configurations, JSON + PNG, the `reskernel lengths` command).
"""
from ._plot import plot_lengths
from ._simulation import empirical_variance
from ._simulation import layer_lengths
from ._simulation import simulate
from ._specs import BLOCKS
from ._specs import LengthSpec
from ._specs import feedforward
from ._specs import geometric_scales
from ._specs import he_variances
from ._specs import resnet
from ._specs import width_profile
from ._study import lengths_command
from ._study import study
from ._summary import LengthSummary
from ._summary import summarize
from ._theory import expected_empirical_variance
from ._theory import mean_bounds
from ._theory import mean_length
from ._theory import second_moment
from ._theory import second_moment_bound

__all__ = [
    "BLOCKS",
    "LengthSpec",
    "LengthSummary",
    "feedforward",
    "resnet",
    "he_variances",
    "width_profile",
    "geometric_scales",
    "layer_lengths",
    "simulate",
    "empirical_variance",
    "mean_length",
    "second_moment",
    "mean_bounds",
    "second_moment_bound",
    "expected_empirical_variance",
    "summarize",
    "plot_lengths",
    "study",
    "lengths_command",
]
