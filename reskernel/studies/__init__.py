"""Studies that use the library's public API: the depth study (kernel regression vs depth),
finite-width sweeps, Hanin & Rolnick's activation lengths, De & Smith's and Bernstein et al.'s
training studies, and Liu et al.'s shortcut ConvNet. Each is imported on first use."""
import importlib

__all__ = ["depth_study", "lengths", "shortcut", "sweeps", "training"]


def __getattr__(name):
    if name in __all__:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
