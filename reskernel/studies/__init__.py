"""Studies that use the library's public API: the depth study (kernel regression vs depth),
finite-width sweeps, Hanin & Rolnick's activation lengths, De & Smith's and Bernstein et al.'s
training studies, Liu et al.'s shortcut ConvNet, the phase diagram of signal propagation, model
selection on ten-class data (Lee et al. 2018's Table 1), the calibration of GP and NTK-ensemble
uncertainties, learning curves on ten-class data and the ten-class depth study (kernels and trained
networks). Each is imported on first use."""
import importlib

__all__ = ["depth_study", "depth_ten", "learning_curves", "lengths", "phases", "selection", "shortcut", "sweeps",
           "training", "uncertainty"]


def __getattr__(name):
    if name in __all__:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
