"""The selection grid (architectures, activations, variances, depths, kernels), the nets it
names, and the models of Lee et al. 2018's Table 1 that the study reproduces.

Every net reads standardized images (|x|^2 = d) with Lee et al.'s first layer
K^0 = w_var x.x' / d + b_var, i.e. in_var = w_var / d: `FeedForward(L, w_var, b_var, activation,
in_var=w_var / d)` has Lee et al.'s K^L as its NNGP (docs/conventions.md), and the ResNet gets the
same embedding (out_var = 1, branch scale alpha = L^-gamma).
"""
import math
from typing import NamedTuple, Optional

from ...core.arch import FeedForward, ResNet
from ..depth_study import KERNELS, PRECISIONS, parse_depths, parse_list
from ..phases._spec import parse_activations, parse_archs, parse_values
from ..sweeps._spec import parse_arch

__all__ = ["Model", "Lee2018", "LEE2018", "MODEL_FIELDS", "family", "model_of", "check_grid", "gamma_of",
           "parse_activations", "parse_archs", "parse_values", "parse_depths", "parse_list", "KERNELS",
           "KERNEL_ORDER", "PRECISIONS", "DEFAULT_GRID", "SMALL_GRID"]

# The kernels in the order tables and figures show them.
KERNEL_ORDER = ("nngp", "ntk")
# The fields that name a model in the result rows, in their sort order.
MODEL_FIELDS = ("arch", "activation", "w_var", "b_var", "kernel", "depth")


class Model(NamedTuple):
    """One model of the grid: a net (arch "ffnet" or "resnet:GAMMA", activation, weight and bias
    variances, depth) and the kernel whose posterior mean predicts ("nngp" or "ntk")."""

    arch: str
    activation: str
    w_var: float
    b_var: float
    kernel: str
    depth: int


class Lee2018(NamedTuple):
    """A row of Lee et al. 2018, Table 1: the model and its published test accuracy
    (1,000 training images, 10 classes, the full official test set)."""

    dataset: str
    model: Model
    published: float


LEE2018 = {
    "mnist": Lee2018("mnist", Model("ffnet", "relu", 1.45, 0.28, "nngp", 20), 0.9279),
    "cifar10": Lee2018("cifar10", Model("ffnet", "relu", 1.28, 0.0, "nngp", 7), 0.3608),
}

# The grid of docs/results/model_selection.md (the command's defaults), and the --small one.
DEFAULT_GRID = {"archs": "ffnet,resnet:0.5,resnet:1", "activations": "relu,erf", "w_vars": "1,1.5,2,2.5",
                "b_vars": "0,0.25,0.5", "depths": "1,3,7,20,50,100", "kernels": "nngp,ntk"}
SMALL_GRID = {"archs": "ffnet,resnet:1", "activations": "relu", "w_vars": "1.5,2", "b_vars": "0.1",
              "depths": "1,3,10", "kernels": "nngp,ntk"}


def gamma_of(arch: str) -> Optional[float]:
    """The ResNet's gamma (alpha = L^-gamma), None for the FFNet."""
    return parse_arch(arch)[1]


def family(arch: str, activation: str, w_var: float, b_var: float, dim: int, depth: int = 1):
    """The net of the grid point: Lee et al.'s K^0 = w_var x.x' / dim + b_var (in_var = w_var / dim)."""
    if not (isinstance(dim, int) and dim >= 1):
        raise ValueError(f"dim must be an int >= 1 (the input dimension), got {dim!r}")
    kind, gamma = parse_arch(arch)
    common = dict(w_var=float(w_var), b_var=float(b_var), activation=activation, in_var=float(w_var) / dim)
    if kind == "ffnet":
        return FeedForward(int(depth), **common)
    return ResNet(int(depth), gamma=gamma, **common)


def model_of(row) -> Model:
    """The Model a result row (a dict with MODEL_FIELDS) describes."""
    return Model(str(row["arch"]), str(row["activation"]), float(row["w_var"]), float(row["b_var"]),
                 str(row["kernel"]), int(row["depth"]))


def check_grid(archs, activations, w_vars, b_vars, depths, kernels) -> dict:
    """Each grid axis parsed and checked (strings as the command takes them, or sequences):
    {archs, activations, w_vars, b_vars, depths, kernels}; ValueError naming the axis."""
    def text(v):
        return v if isinstance(v, str) else ",".join(str(x) for x in v)

    out = {"archs": parse_archs(text(archs)), "activations": parse_activations(text(activations)),
           "w_vars": parse_values(text(w_vars) if isinstance(w_vars, str) else ",".join(repr(float(v)) for v in w_vars),
                                  name="w_vars", positive=True),
           "b_vars": parse_values(text(b_vars) if isinstance(b_vars, str) else ",".join(repr(float(v)) for v in b_vars),
                                  name="b_vars", positive=False),
           "depths": parse_depths(text(depths)),
           "kernels": parse_list(text(kernels), KERNELS, name="kernels")}
    for v in out["w_vars"] + out["b_vars"]:
        if not math.isfinite(v):
            raise ValueError(f"variances must be finite, got {v}")
    return out
