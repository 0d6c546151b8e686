"""Finite-width networks in the parametrization of the analytic kernels, and their
empirical NNGP/NTK."""
