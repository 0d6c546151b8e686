"""Studies that use the library's public API: the depth study (kernel regression vs depth),
finite-width sweeps, Hanin & Rolnick's activation lengths, De & Smith's and Bernstein et al.'s
training studies, and Liu et al.'s shortcut ConvNet."""
from . import depth_study, lengths, shortcut, sweeps, training

__all__ = ["depth_study", "lengths", "shortcut", "sweeps", "training"]
