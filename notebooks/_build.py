"""Write the notebooks in this folder (nbformat v4, no outputs): python notebooks/_build.py

Each notebook is a list of cells below; edit here, not in the .ipynb files. The first code
cell of every notebook reads RESKERNEL_SMALL (1 = sizes small enough for CI on a CPU).
Figures go to $RESKERNEL_NOTEBOOK_OUT (default results/notebooks/ of the repository, whatever
the working directory) as PNG and are shown inline.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

SMALL_CELL = 'import os\nSMALL = os.environ.get("RESKERNEL_SMALL", "0") == "1"'


def _setup(name: str) -> str:
    return f'''from pathlib import Path

import jax
import numpy as np
from IPython.display import Image, Markdown, display

import reskernel as rk
from reskernel.plotting import figure, save
from reskernel.precision import enable_x64

# The repository root (the folder holding notebooks/_build.py) above the working directory,
# which nbconvert and Jupyter set to notebooks/: default figures go to <root>/results/notebooks.
ROOT = next((p for p in (Path.cwd(), *Path.cwd().parents) if (p / "notebooks" / "_build.py").is_file()), Path.cwd())
OUT = Path(os.environ.get("RESKERNEL_NOTEBOOK_OUT") or ROOT / "results" / "notebooks") / "{name}"
OUT.mkdir(parents=True, exist_ok=True)


def show(fig, filename):
    """Save with the package's plot style (PNG, atomic) and display inline."""
    display(Image(filename=str(save(fig, OUT / filename))))'''


def md(text: str):
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text: str):
    return nbformat.v4.new_code_cell(text.strip("\n"))


def build(name: str, title_md: str, cells) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [md(title_md), code(SMALL_CELL), code(_setup(name)), *cells]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{name[:2]}-{i:02d}"  # stable ids: rebuilding gives identical files
    nbformat.validate(nb)
    path = HERE / f"{name}.ipynb"
    nbformat.write(nb, str(path))
    return path


# --------------------------------------------------------------------------- 01
NB01 = ("01_theory_vs_finite_width", r"""
# 1. Theory vs finite width

**Claim.** The empirical NNGP and NTK of a finite-width network at initialization converge to
the analytic infinite-width kernels (`rk.kernel`) as the width m grows; the seed-to-seed spread
shrinks like m^-1/2.

`reskernel.sweeps` draws the networks (vmapped over seeds), compares them with the float64
analytic kernels and reports percentile bands over seeds and the slope of log error vs log
width. The inputs lie on a great circle, x(θ) = cos θ e1 + sin θ e2 in R^16 (unit norm), so each
kernel is a function of the angle θ between inputs.
""", [
    code(r'''
from reskernel import sweeps

DEPTH = 4 if SMALL else 10
WIDTHS = (32, 128, 512) if SMALL else (64, 256, 1024, 4096)
SEEDS = 8 if SMALL else 32
N_ANGLES = 9 if SMALL else 25
D = 16
theta = np.linspace(0.0, np.pi, N_ANGLES)
x = np.zeros((N_ANGLES, D))
x[:, 0], x[:, 1] = np.cos(theta), np.sin(theta)
ARCHS = {"ffnet": rk.FeedForward(DEPTH), "resnet:1": rk.ResNet(DEPTH, gamma=1.0)}
print(f"depth {DEPTH}, widths {WIDTHS}, {SEEDS} seeds, {N_ANGLES} angles")
'''),
    md("The sweep: float32 networks, float64 analytic kernels, relative Frobenius error per network "
       "(resumable: rerunning skips the networks already in sweep.json)."),
    code(r'''
res = sweeps.sweep(OUT / ("sweep_small" if SMALL else "sweep"), archs=list(ARCHS), depths=(DEPTH,),
                   widths=WIDTHS, seeds=SEEDS, x=x, progress=False, plot=False, log=lambda *a: None)
summary = res["summary"]
show_png = lambda p: display(Image(filename=str(p)))
show_png(sweeps.plot_sweep(res, OUT / "error_vs_width.png"))
slopes = {(s["arch"], s["kernel"]): (s["slope"], s["stderr"]) for s in summary["slopes"] if s["metric"] == "frob"}
rows = {(r["arch"], r["kernel"], r["width"]): r for r in summary["rows"]}
for (arch, kern), (slope, se) in slopes.items():
    meds = "  ".join(f"m={w}: {rows[arch, kern, w]['frob_p50']:.4f}" for w in WIDTHS)
    print(f"{arch:<9}{kern:<5} median rel. error  {meds}   slope {slope:.2f} ± {se:.2f}")
'''),
    md("The kernels themselves: median and 10-90 percentile band over seeds of Θ(x(0), x(θ)) "
       "(same simulator, `sweeps.lean_kernels`) against the analytic curve."),
    code(r'''
theory, draws = {}, {}
xf = jax.numpy.asarray(x, np.float32)
for name, arch in ARCHS.items():
    with enable_x64():
        k = rk.kernel(arch, x)
    theory[name] = (np.asarray(k.nngp)[0], np.asarray(k.ntk)[0])
    for width in (WIDTHS[0], WIDTHS[-1]):
        keys = jax.random.split(jax.random.PRNGKey(width), SEEDS)
        nngp, ntk = sweeps.lean_kernels(keys, xf, arch=arch, width=width, max_depth=DEPTH)
        draws[name, width] = (np.asarray(nngp, np.float64)[:, 0], np.asarray(ntk, np.float64)[:, 0])
fig, axes = figure(2 * len(ARCHS), width=4.0, height=3.5)
inside = {}
for col, name in enumerate(ARCHS):
    for which in (0, 1):
        ax, kern = axes[2 * col + which], ("NNGP", "NTK")[which]
        for i, width in enumerate((WIDTHS[0], WIDTHS[-1])):
            lo, med, hi = np.percentile(draws[name, width][which], [10, 50, 90], axis=0)
            ax.fill_between(theta, lo, hi, color=f"C{i}", alpha=0.25, lw=0)
            ax.plot(theta, med, "o", ms=3, color=f"C{i}", label=f"m = {width} (median, 10-90%)")
        inside[name, kern] = float(np.mean((theory[name][which] >= lo) & (theory[name][which] <= hi)))
        ax.plot(theta, theory[name][which], "k-", lw=1.5, label="infinite width")
        ax.set_xlabel("angle θ between inputs [rad]")
        ax.set_ylabel(f"{kern} (x(0), x(θ)) [unit-norm inputs]")
        ax.set_title(f"{name}, depth {DEPTH}: {kern}")
axes[0].legend()
show(fig, "kernels_vs_angle.png")
'''),
    code(r'''
w0, w1 = WIDTHS[0], WIDTHS[-1]
RESULT = {"slopes": {f"{a} {k}": s for (a, k), (s, _) in slopes.items()},
          "median_error_first": {f"{a} {k}": rows[a, k, w0]["frob_p50"] for (a, k) in slopes},
          "median_error_last": {f"{a} {k}": rows[a, k, w1]["frob_p50"] for (a, k) in slopes}}
lines = [f"**Measured** (depth {DEPTH}, {SEEDS} networks per width, {N_ANGLES} inputs on a great circle of R^{D}, "
         "float32 networks vs float64 theory):", "",
         f"| architecture | kernel | median rel. Frobenius error at m = {w0} | at m = {w1} "
         f"| slope of log error vs log m (± s.e.) | angles with theory inside the 10-90% band at m = {w1} |",
         "|---|---|---|---|---|---|"]
for (a, k), (s, se) in slopes.items():
    lines.append(f"| {a} | {k.upper()} | {rows[a, k, w0]['frob_p50']:.3f} | {rows[a, k, w1]['frob_p50']:.3f} "
                 f"| {s:.2f} ± {se:.2f} | {inside[a, k.upper()]:.0%} |")
s = np.array(list(RESULT["slopes"].values()))
lines += ["", f"The error of every kernel {'falls' if (s < 0).all() else 'does NOT always fall'} as the width grows; "
          f"the fitted slopes ({s.min():.2f} to {s.max():.2f}) are to be compared with the m^-1/2 (slope -0.5) of a "
          f"central limit theorem. With {SEEDS} seeds per width the slopes carry the noise shown, and at small widths "
          "the error also has an O(1/m) bias, which steepens them."]
display(Markdown("\n".join(lines)))
'''),
])


# --------------------------------------------------------------------------- 02
NB02 = ("02_depth_study", r"""
# 2. Depth study: kernel regression accuracy vs depth on MNIST2 and CIFAR2

**Claim** (Huang, Wang, Tao and Zhao, NeurIPS 2020). As the depth L grows, the NTK of a ReLU
FFNet degenerates (all input correlations drift to 1; Θ_L / L tends to a constant plus a nugget),
so NTK regression loses its accuracy; the NTK of a ResNet whose branches are scaled by
alpha = L^-gamma with 1/2 <= gamma <= 1 keeps a non-degenerate limit, so its accuracy stays as L grows.

`reskernel.depth_study.study` computes the analytic NTK and NNGP (float64) of every architecture
at every depth on two-class subsets of MNIST (4 vs 9) and CIFAR-10 (airplane vs automobile),
inputs centred and on the unit sphere, and measures the test accuracy of kernel ridge regression
(`reskernel.regression.kernel_regression`) on labels ±1, ridge 1e-6 × mean diagonal.
""", [
    code(r'''
from reskernel import depth_study

# n_test = None: every test image of the two classes
N_TRAIN, N_TEST = (80, 100) if SMALL else (600, None)
DEPTHS = (1, 16, 256) if SMALL else (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
GAMMAS = (0.5, 1.0) if SMALL else (0.25, 0.5, 0.75, 1.0)
DATASETS = ("mnist2", "cifar2")
runs = {}
for dname in DATASETS:
    runs[dname] = depth_study.study(dname, archs=("ffnet", "resnet"), gammas=GAMMAS, depths=DEPTHS,
                                    kernels=("ntk", "nngp"), precisions=("float64",), n_train=N_TRAIN,
                                    n_test=N_TEST, out=OUT / "study", progress=False)
    display(Image(filename=str(runs[dname]["png"])))
    r0 = runs[dname]["rows"][0]
    print(f"{dname} {r0['classes']}: {r0['n_train']} train / {r0['n_test']} test images")
    display(Markdown(depth_study.summary_table(runs[dname]["rows"])))
'''),
    code(r'''
def accuracies(dname, arch, gamma, kernel="ntk"):
    pts = sorted((r["depth"], r["accuracy"]) for r in runs[dname]["rows"]
                 if r["arch"] == arch and r["gamma"] == gamma and r["kernel"] == kernel)
    return np.array([a for _, a in pts])

L0, L1 = DEPTHS[0], DEPTHS[-1]
lines = [f"**Measured** (NTK ridge regression, float64; depths {', '.join(map(str, DEPTHS))}):", "",
         f"| dataset | architecture | accuracy at L = {L0} | best over L | at L = {L1} | drop from best |",
         "|---|---|---|---|---|---|"]
drops = {}
for dname in DATASETS:
    for arch, g in [("ffnet", None)] + [("resnet", g) for g in GAMMAS]:
        a = accuracies(dname, arch, g)
        name = "FFNet" if g is None else f"ResNet gamma = {g:g}"
        drops[dname, name] = 100 * (a.max() - a[-1])
        lines.append(f"| {dname} | {name} | {100 * a[0]:.1f}% | {100 * a.max():.1f}% | {100 * a[-1]:.1f}% "
                     f"| {drops[dname, name]:.1f} points |")
ff = [v for (d, a), v in drops.items() if a == "FFNet"]
res = [v for (d, a), v in drops.items() if a != "FFNet"]
holds = min(ff) > max(res)
RESULT = {"drops": {f"{d} {a}": v for (d, a), v in drops.items()},
          "accuracy_last": {f"{d} {a}:{g}": float(accuracies(d, a, g)[-1]) for d in DATASETS
                            for a, g in [("ffnet", None)] + [("resnet", g) for g in GAMMAS]},
          "claim_holds": bool(holds)}
lines += ["", f"At depth {L1} the FFNet's NTK accuracy has dropped by {min(ff):.1f}-{max(ff):.1f} points from its best, "
          f"the ResNets with gamma in {list(GAMMAS)} by {min(res):.1f}-{max(res):.1f} points: "
          + ("the claim holds in this run." if holds else "the claim is NOT borne out in this run.")]
display(Markdown("\n".join(lines)))
'''),
])


# --------------------------------------------------------------------------- 03
NB03 = ("03_infinite_depth_limits", r"""
# 3. Infinite-depth limits of the NTK

**Claims** (Huang, Wang, Tao and Zhao 2020; conventions in docs/conventions.md), for unit inputs
with correlation rho_0 = <x, x'>:

1. **FFNet degeneracy.** The NNGP correlation rho_L -> 1 for every pair and
   Θ_L / L -> 1/4 off the diagonal (1 on it): the NTK becomes a constant plus a nugget.
2. **ResNet, 1/2 < gamma <= 1.** Θ_L / (L alpha^2) -> rho_0 k0(rho_0) + k1(rho_0), the NTK of a depth-1
   ResNet (a two-layer ReLU net), with an error shrinking like T = L^(1 - 2 gamma).
3. **ResNet, gamma = 1/2.** The recursion becomes an ODE on t in [0, 1]:
   d rho/dt = k1(rho) - rho, dΘ/dt = Θ k0(rho) + e^t (rho k0(rho) + k1(rho)), Θ(0) = 0;
   the limit is smooth and non-degenerate but differs from depth 1.

`reskernel.limits` gives each family's limit (`limit_correlation_kernels`, `resnet_ode`), its depth
normalization (`depth_scaling`) and the distance of the depth-L kernels to the limit with the
leading-order theory for it (`depth_error`); the depth-L kernels are the float64 recursion
(`rk.correlation_kernels`).
""", [
    code(r'''
from reskernel import limits

# rho0 = -1 left out: there the gamma > 1/2 NTK converges only like T^(1/2) (see reskernel.limits)
RHO0 = np.linspace(-1.0, 1.0, 41 if SMALL else 201)[1:]
DEPTHS = (8 ** np.arange(0, 4) if SMALL else 2 ** np.arange(0, 15)).astype(int)
FAMILIES = {"FFNet": rk.FeedForward(1), "ResNet gamma = 0.75": rk.ResNet(1, gamma=0.75),
            "ResNet gamma = 1": rk.ResNet(1, gamma=1.0), "ResNet gamma = 0.5": rk.ResNet(1, gamma=0.5)}
with enable_x64():
    errors = {name: [limits.depth_error(fam.with_depth(int(L)), RHO0) for L in DEPTHS]
              for name, fam in FAMILIES.items()}
for name, errs in errors.items():
    print(f"{name:<20} regime {errs[0].regime:<12} max NTK error at L = {DEPTHS[0]}: {errs[0].ntk:.3g}, "
          f"at L = {DEPTHS[-1]}: {errs[-1].ntk:.3g} (leading-order theory {errs[-1].ntk_predicted:.3g})")
'''),
    md("### 1. FFNet: Θ_L / L flattens to the constant 1/4 (plus the nugget at ρ0 = 1)"),
    code(r'''
LMAX = int(DEPTHS[-1])
with enable_x64():
    ff = rk.correlation_kernels(rk.FeedForward(LMAX), RHO0, all_depths=True)
ntk_ff = np.asarray(ff.ntk)[DEPTHS - 1] / DEPTHS[:, None]          # depth_scaling: (1, L)
ff_limit = limits.limit_correlation_kernels(rk.FeedForward(1), RHO0)
fig, ax = figure()
for i, L in enumerate(DEPTHS):
    ax.plot(RHO0, ntk_ff[i], color=f"C{i}", label=f"L = {L}")
ax.plot(RHO0, ff_limit.ntk, "k:", lw=2, label="depth limit")
ax.set_xlabel("input correlation ρ0 = <x, x'> (unit inputs)")
ax.set_ylabel("Θ_L / L (NTK per layer)")
ax.set_title("FFNet NTK: degeneracy with depth")
ax.legend()
show(fig, "ffnet_degeneracy.png")
'''),
    md("### 2. Distance to the limit vs depth, every family (dashed: leading-order theory)"),
    code(r'''
def slope(values, k=3):
    return float(np.polyfit(np.log(DEPTHS[-k:]), np.log(np.asarray(values)[-k:]), 1)[0])

fig, axes = figure(2, width=5.0, height=3.9)
fitted = {}
for i, (name, errs) in enumerate(errors.items()):
    for ax, kern in zip(axes, ("nngp", "ntk")):
        meas = np.array([getattr(e, kern) for e in errs])
        pred = np.array([getattr(e, kern + "_predicted") for e in errs])
        fitted[name, kern] = slope(meas)
        ax.loglog(DEPTHS, meas, "o-", color=f"C{i}", label=f"{name} (slope {fitted[name, kern]:.2f})")
        if np.isfinite(pred).all() and (pred > 0).all():
            ax.loglog(DEPTHS, pred, "--", color=f"C{i}")
for ax, kern in zip(axes, ("NNGP", "NTK")):
    ax.set_xlabel("depth L (layers / residual blocks)")
    ax.set_ylabel(f"max over ρ0 of |{kern}_L / factor - limit|")
    ax.set_title(f"{kern}: distance to the depth limit")
    ax.legend()
show(fig, "distance_to_limit.png")
'''),
    md("### 3. gamma = 1/2: the ODE limit differs from the two-layer NTK"),
    code(r'''
ode = limits.resnet_ode(RHO0)
two_layer = limits.limit_correlation_kernels(rk.ResNet(1, gamma=1.0), RHO0)
with enable_x64():
    deep = rk.correlation_kernels(rk.ResNet(LMAX, gamma=0.5), RHO0)
fig, ax = figure()
ax.plot(RHO0, ode.ntk, "k-", lw=2, label="ODE limit Θ(1)")
ax.plot(RHO0, np.asarray(deep.ntk), "C1--", label=f"recursion, L = {LMAX}")
ax.plot(RHO0, two_layer.ntk, "C2:", label="two-layer NTK ρ0 k0 + k1 (gamma > 1/2 limit)")
ax.set_xlabel("input correlation ρ0 = <x, x'> (unit inputs)")
ax.set_ylabel("NTK Θ (unit inputs)")
ax.set_title("ResNet gamma = 1/2: ODE limit")
ax.legend()
show(fig, "gamma_half_ode.png")
'''),
    code(r'''
i0 = int(np.argmin(np.abs(RHO0)))
ffe, half = errors["FFNet"][-1], errors["ResNet gamma = 0.5"][-1]
RESULT = {"final_ntk_error": {n: e[-1].ntk for n, e in errors.items()},
          "final_nngp_error": {n: e[-1].nngp for n, e in errors.items()},
          "ntk_slope": {n: fitted[n, "ntk"] for n in errors},
          "ode_ntk_at_0": float(ode.ntk[i0]), "two_layer_ntk_at_0": float(two_layer.ntk[i0])}
res = "; ".join(f"gamma = {FAMILIES[n].gamma:g}: {errors[n][-1].ntk:.2e} (slope {fitted[n, 'ntk']:.2f}, "
                f"theory T = L^{1 - 2 * FAMILIES[n].gamma:.2f}; leading-order prediction {errors[n][-1].ntk_predicted:.2e})"
                for n in ("ResNet gamma = 0.75", "ResNet gamma = 1"))
text = f"""**Measured** (float64 recursion on {len(RHO0)} correlations in [-1, 1], depths {DEPTHS[0]}..{LMAX}; slopes of
log error vs log L over the last three depths):

1. FFNet at L = {LMAX}: max 1 - rho_L = {ffe.nngp:.2e} (slope {fitted['FFNet', 'nngp']:.2f}; theory 9π²/(2L²) = {ffe.nngp_predicted:.2e})
   and max |Θ_L / L - 1/4| = {ffe.ntk:.3f} (slope {fitted['FFNet', 'ntk']:.2f}; leading term (3/8) log L / L = {ffe.ntk_predicted:.3f}):
   the kernel degenerates, polynomially slowly in L.
2. ResNet, max NTK error to the two-layer NTK at L = {LMAX}: {res}. At ρ0 = -1 (left out of the grid) the
   convergence is only O(T^1/2) (see reskernel.limits).
3. gamma = 1/2: max |Θ_L - Θ_ODE(1)| = {half.ntk:.2e} at L = {LMAX} (slope {fitted['ResNet gamma = 0.5', 'ntk']:.2f}, theory -1),
   correlation error {half.nngp:.2e}. The limit is not the two-layer NTK: at ρ0 = 0, Θ_ODE(1) = {ode.ntk[i0]:.4f} vs
   {two_layer.ntk[i0]:.4f}, and it is not degenerate (Θ_ODE(1) ranges over {ode.ntk.min():.3f}..{ode.ntk.max():.3f})."""
display(Markdown(text))
'''),
])


# --------------------------------------------------------------------------- 04
NB04 = ("04_activation_lengths", r"""
# 4. Activation-length failure modes at initialization (Hanin & Rolnick 2018)

**Claims** (Hanin & Rolnick, *How to start training*, NeurIPS 2018), for the mean squared
activation M_j = |x_j|^2 / n_j of a ReLU net at initialization:

* **FM1** (exploding / vanishing mean length): for an FFNet, E[M_d] = M_0 prod_j n_{j-1} sigma_j^2 / 2,
  so only He initialization (sigma_j^2 = 2 / n_{j-1}) keeps it constant; any other gain g gives g^d.
  For a ResNet x_l = x_{l-1} + eta_l N_l(x_{l-1}) the mean stays bounded iff sum_l eta_l < inf
  (eta_l = 1 explodes exponentially, eta_l = b^l does not).
* **FM2** (large fluctuations of the length across layers): even with He initialization,
  E[M_d^2] / E[M_d]^2 = prod_j (1 + 5 / n_j), i.e. grows like exp(5 sum_j 1/n_j): deep and
  narrow is bad, and a decreasing width profile is worse than an increasing one.

`reskernel.lengths` simulates the nets and gives the exact finite-width theory; we check
measurement against theory for each configuration.
""", [
    code(r'''
from reskernel import lengths as L

WIDTH = 64 if SMALL else 128
DEPTH = 12 if SMALL else 50
SEEDS = 120 if SMALL else 2000
B = 0.9
n = WIDTH
configs = {
    "FFNet He": L.feedforward((n,) * (DEPTH + 1)),
    "FFNet gain 0.9": L.feedforward((n,) * (DEPTH + 1), L.he_variances((n,) * (DEPTH + 1), 0.9)),
    "FFNet gain 1.1": L.feedforward((n,) * (DEPTH + 1), L.he_variances((n,) * (DEPTH + 1), 1.1)),
    "FFNet increasing": L.feedforward(L.width_profile(n // 2, 2 * n, DEPTH)),
    "FFNet decreasing": L.feedforward(L.width_profile(2 * n, n // 2, DEPTH)),
    "ResNet relu, eta = 1": L.resnet(n, (1.0,) * DEPTH, block="relu"),
    f"ResNet relu, eta = {B}^l": L.resnet(n, L.geometric_scales(B, DEPTH), block="relu"),
}
if not SMALL:  # the linear-readout block (one more compilation) only at full size
    configs["ResNet linear, eta = 1"] = L.resnet(n, (1.0,) * DEPTH, block="linear")
    configs[f"ResNet linear, eta = {B}^l"] = L.resnet(n, L.geometric_scales(B, DEPTH), block="linear")
print(f"width {WIDTH}, depth {DEPTH}, {SEEDS} networks per configuration")
'''),
    md("Simulation in float64 (lengths of the eta = 1 ResNets reach 1e10 and more)."),
    code(r'''
summaries = {}
with enable_x64():
    for i, (name, spec) in enumerate(configs.items()):
        x0 = np.ones(spec.widths[0])
        m = L.simulate(spec, jax.random.PRNGKey(i), SEEDS, x0)
        summaries[name] = L.summarize(spec, m, x0)
display(Image(filename=str(L.plot_lengths(summaries, OUT / "lengths.png"))))
'''),
    code(r'''
print(f"{'configuration':<26}{'E[M_d] measured':>18}{'theory':>12}{'z':>7}{'E[M^2]/E[M]^2':>15}{'theory':>9}{'FM2 var':>10}{'theory':>10}")
for name, s in summaries.items():
    d = s.spec.depth
    print(f"{name:<26}{s.mean[d]:>11.4g} ± {s.mean_se[d]:<6.2g}{s.mean_theory[d]:>10.4g}{s.mean_z[d]:>7.2f}"
          f"{s.ratio[d]:>15.3f}{s.ratio_theory[d]:>9.3f}{s.fm2:>10.3g}{s.fm2_theory:>10.3g}")
'''),
    code(r'''
S = summaries
d = DEPTH
he, inc, dec = S["FFNet He"], S["FFNet increasing"], S["FFNet decreasing"]
exact = [s for s in S.values() if s.spec.exact]
zmax = max(np.nanmax(np.abs(s.mean_z[1:])) for s in exact)
relu1, relub = S["ResNet relu, eta = 1"], S[f"ResNet relu, eta = {B}^l"]
zr = (he.ratio[d] - he.ratio_theory[d]) / he.ratio_se[d]
RESULT = {"he_mean": float(he.mean[d]), "gain_0.9_mean": float(S["FFNet gain 0.9"].mean[d]),
          "gain_1.1_mean": float(S["FFNet gain 1.1"].mean[d]), "relu_eta_1_mean": float(relu1.mean[d]),
          "relu_eta_b_mean": float(relub.mean[d]), "max_abs_z": float(zmax), "ratio_he": float(he.ratio[d]),
          "ratio_he_theory": float(he.ratio_theory[d])}
fm2_note = ("Within sampling error." if abs(zr) < 3 else
            "The measured ratio is below theory: M_d is heavy-tailed (close to log-normal), so the sample mean "
            "of M_d^2 over a few hundred networks underestimates E[M_d^2] and its standard error is itself "
            "unreliable; the exact moments are checked against Monte Carlo in tests/test_lengths.py.")
linear = ("" if SMALL else f"; linear-readout block: {S['ResNet linear, eta = 1'].mean[d]:.3g} "
          f"vs {S[f'ResNet linear, eta = {B}^l'].mean[d]:.3g}")
text = f"""**Measured** (width {WIDTH}, depth {d}, {SEEDS} networks each, float64):

* FM1, FFNet: E[M_d] = {he.mean[d]:.3f} ± {he.mean_se[d]:.3f} with He (theory 1), {S['FFNet gain 0.9'].mean[d]:.3g}
  with gain 0.9 (theory 0.9^{d} = {0.9 ** d:.3g}), {S['FFNet gain 1.1'].mean[d]:.3g} with gain 1.1 (theory {1.1 ** d:.3g}).
* FM1, ResNet (Hanin-Rolnick relu block): E[M_d] = {relu1.mean[d]:.3g} with eta_l = 1 (bounds
  {relu1.mean_lower[d]:.3g}-{relu1.mean_upper[d]:.3g}) but {relub.mean[d]:.3g} with eta_l = {B}^l (bounds
  {relub.mean_lower[d]:.3g}-{relub.mean_upper[d]:.3g}){linear}.
* FM2: E[M_d^2]/E[M_d]^2 = {he.ratio[d]:.3f} ± {he.ratio_se[d]:.3f} for constant width (theory {he.ratio_theory[d]:.3f}),
  {inc.ratio[d]:.3f} for increasing widths {inc.spec.widths[0]}->{inc.spec.widths[-1]} (theory {inc.ratio_theory[d]:.3f})
  and {dec.ratio[d]:.3f} for decreasing widths (theory {dec.ratio_theory[d]:.3f}); sum 1/n_j = {inc.beta:.3f} vs {dec.beta:.3f}.
  Mean empirical variance across layers: {he.fm2:.3f} (theory {he.fm2_theory:.3f}), {inc.fm2:.3f} vs {dec.fm2:.3f}.
* Mean length vs exact theory, all exact configurations and layers: largest |z| = {zmax:.2f}
  ({"consistent with" if zmax < 4 else "NOT consistent with"} sampling error over {DEPTH * len(exact)} layer-configurations).
* FM2 ratio at layer d, constant width: z = {(he.ratio[d] - he.ratio_theory[d]) / he.ratio_se[d]:.1f}. {fm2_note}

Failure mode 1 appears as predicted: the wrong gain or non-summable residual scales make the mean length
explode or vanish exponentially in depth. For failure mode 2 the fluctuations grow with sum 1/n_j; the
decreasing profile has {"larger" if dec.fm2 > inc.fm2 else "smaller"} across-layer variance than the increasing one
({dec.fm2:.3f} vs {inc.fm2:.3f}; Hanin & Rolnick predict larger)."""
display(Markdown(text))
'''),
])


# --------------------------------------------------------------------------- 05
NB05 = ("05_skipinit_fromage", r"""
# 5. Training deep nets: SkipInit / batch norm (De & Smith 2020) and Fromage (Bernstein et al. 2020)

**Claims.**
1. *Stream statistics at initialization* (De & Smith, NeurIPS 2020). In a plain residual net the
   variance of the stream doubles every block (E[Q_l] = 2^l q0), so the branches are as large as the
   skip path; batch norm divides each branch by ~sqrt(l) (the ratio branch/skip falls like 1/sqrt(l)),
   SkipInit (a learnable branch scalar initialized at 0) makes every block the identity, and a fixed
   alpha = L^-1/2 keeps the stream bounded.
2. *Trainability.* Deep plain residual nets are hard to train at a fixed learning rate; batch norm,
   SkipInit and the alpha = L^-1/2 scaling make them trainable.
3. *Fromage* (Bernstein, Vahdat, Yue and Liu, NeurIPS 2020). Per-layer relative updates
   (deep relative trust) train deep MLPs at one learning rate, with less tuning than SGD or Adam.

`reskernel.training` holds the nets, optimizers and studies; we run them on MNIST2.
""", [
    code(r'''
from reskernel import training as tr

STREAM = dict(depth=20, width=32, n_seeds=4) if SMALL else dict(depth=200, width=256, n_seeds=16)
# Small mode: the 128 training images are one batch (batch_size=None, full-batch steps): the gradient
# of a 128-image minibatch of 128 images, without a sampling step to compile into every run.
SKIP = dict(depths=(12,), width=16, steps=50, learning_rates=(0.1,), batch_size=None) if SMALL else \
    dict(depths=(10, 30, 100, 300), width=64, steps=300, learning_rates=(0.1, 0.01))
FROM = dict(depths=(10,), width=16, steps=60, batch_size=None,
            grids={k: v for k, v in tr.FROMAGE_GRIDS.items() if k != "lars"}) if SMALL else \
    dict(depths=(2, 5, 10, 15, 20, 25, 30, 40, 50), width=128, steps=500)
x_train, y_train, x_test, y_test = tr.load_two_class("mnist2", n_train=128 if SMALL else 2000,
                                                     n_test=128 if SMALL else 1000)
print(x_train.shape, x_test.shape)
'''),
    md("### 1. The residual stream at initialization"),
    code(r'''
with enable_x64():
    stream = tr.stream_study(x_train[:32], **STREAM, progress=False)
display(Image(filename=str(tr.plot_stream(stream, OUT / "stream.png"))))
L = STREAM["depth"]
for m, r in stream["methods"].items():
    s, th = np.asarray(r["stream"], float), np.asarray(r["theory_stream"], float)
    print(f"{m:<10} E[Q_L]/q0 measured {s[-1] / s[0]:.4g}  closed form {th[-1] / th[0]:.4g}   "
          f"branch/skip ratio at block 1: {np.asarray(r['ratio'], float)[0]:.3f}, at block {L}: {np.asarray(r['ratio'], float)[-1]:.3f}")
'''),
    md("### 2. Trainability of deep residual MLPs"),
    code(r'''
skip = tr.skipinit_study(x_train, y_train, x_test, y_test, **SKIP, out=OUT / "skipinit.json", progress=False)
display(Image(filename=str(tr.plot_skipinit(skip, OUT / "skipinit.png"))))
fmt = lambda v: "   -" if v is None else f"{v:.3f}"
print(f"{'method':<10}{'depth':>6}{'lr':>7}{'train loss':>12}{'train acc':>11}{'test acc':>10}  trained/stalled/diverged")
for r in tr.summarize_skipinit(skip):
    print(f"{r['method']:<10}{r['depth']:>6}{r['learning_rate']:>7g}{fmt(r['train_loss']):>12}"
          f"{fmt(r['train_accuracy']):>11}{fmt(r['test_accuracy']):>10}  {r['trained']}/{r['stalled']}/{r['diverged']}")
'''),
    md("### 3. Fromage vs SGD, Adam and LARS on deep MLPs"),
    code(r'''
fro = tr.fromage_study(x_train, y_train, x_test, y_test, **FROM, out=OUT / "fromage.json", progress=False)
display(Image(filename=str(tr.plot_fromage(fro, OUT / "fromage.png"))))
fsum = tr.summarize_fromage(fro)
for opt, table in fsum["best"].items():
    print(f"{opt:<8}" + "  ".join(f"L={d}: {a:.3f} (lr {lr:g})" for d, (a, _, lr) in sorted(table.items())))
print("deepest depth reaching", fsum["threshold"], "train accuracy:", fsum["deepest"])
'''),
    code(r'''
def final_ratio(m):
    r = stream["methods"][m]
    s = np.asarray(r["stream"], float)
    return s[-1] / s[0], np.asarray(r["ratio"], float)[-1]

recs = skip["records"]
deep = max(SKIP["depths"])
def status(method):
    return ", ".join(f"lr {r['learning_rate']:g}: {r['status']}"
                     + ("" if r["train_accuracy"] is None else f" (train acc {r['train_accuracy']:.3f})")
                     for r in recs if r["method"] == method and r["depth"] == deep)
RESULT = {"stream_growth": {m: float(final_ratio(m)[0]) for m in stream["methods"]},
          "skipinit_status": {f"{r['method']} lr {r['learning_rate']:g}": r["status"] for r in recs if r["depth"] == deep},
          "fromage_best": {o: float(t[max(FROM["depths"])][0]) for o, t in fsum["best"].items()}}
lines = [f"**Measured** (MNIST2, {len(y_train)} training images):", "",
         f"1. Stream at depth {L} (E[Q_L]/q0; branch/skip ratio at the last block): " + "; ".join(
             f"{m} {final_ratio(m)[0]:.3g}, {final_ratio(m)[1]:.3f}" for m in stream["methods"]) + ".",
         f"2. Depth {deep}, {SKIP['steps']} steps of SGD: " + "; ".join(f"**{m}** {status(m)}" for m in tr.RESNET_METHODS) + ".",
         f"3. Best final training accuracy at the deepest MLP (L = {max(FROM['depths'])}, {FROM['steps']} steps, best lr of each grid): "
         + ", ".join(f"{o} {t[max(FROM['depths'])][0]:.3f}" for o, t in fsum["best"].items())
         + f"; deepest depth reaching {fsum['threshold']:.0%} train accuracy: " + ", ".join(f"{k} {v}" for k, v in fsum["deepest"].items()) + ".",
         "", "In small mode (CI) the runs are short and narrow; the full sizes are those of the studies' command-line defaults."]
display(Markdown("\n".join(lines)))
'''),
])


# --------------------------------------------------------------------------- 06
NB06 = ("06_shortcut_gradient_descent", r"""
# 6. Shortcut ConvNet: gradient descent with and without the shortcut

**Claim** (Liu, Chen, Zhou, Du, Zhou and Zhao, NeurIPS 2019, against Du, Lee, Tian, Poczos and
Singh, ICML 2018). A two-layer non-overlapping convolutional net f(Z) = sum_j a_j relu(w . Z_j)
learns a teacher of the same architecture from Gaussian patches. Without the shortcut (Du et al.)
gradient descent from a random filter is trapped in a spurious local minimum with constant
probability. With the average-pooling shortcut and w_0 = 0 (Liu et al.), gradient descent reaches
the global minimum (nearly) always; a warm-up with a smaller first-layer step also helps.

`reskernel.shortcut` runs gradient descent on the closed-form population loss, vmapped over random
teachers; a run succeeds when its loss falls below 1e-3 of l(0, 0).
""", [
    code(r'''
from reskernel import shortcut as sc

if SMALL:
    SETTINGS = sc.StudySettings(runs=48, steps=1000, warmup_steps=200)
    PS, KS = (8,), (4, 16)
else:
    SETTINGS = sc.StudySettings()   # 200 runs, 4000 steps, lr 0.1, warm-up 1000 steps at 0.1
    PS, KS = (4, 8, 16), (4, 8, 16, 32)
print(SETTINGS)
entries = sc.run_success_study(OUT / "study", patch_dims=PS, patches=KS, settings=SETTINGS, progress=False)
display(Image(filename=str(sc.plot_success(entries, OUT / "success.png"))))
'''),
    code(r'''
def label(e):
    return (("ResNet" if e["shortcut"] else "CNN") + (", w0 = 0" if e["w_init_norm"] == 0 else ", random w0")
            + (f", warm-up" if e["warmup"] else ""))

print(f"{'p':>3}{'k':>4}  {'variant':<28}{'global':>8}{'spurious':>10}{'unconv.':>9}{'success':>9}{'s.e.':>7}")
for e in entries:
    print(f"{e['p']:>3}{e['k']:>4}  {label(e):<28}{e['global']:>8}{e['spurious']:>10}{e['unconverged']:>9}"
          f"{e['success_rate']:>9.3f}{e['success_se']:>7.3f}")
'''),
    code(r'''
P, K = PS[-1], KS[0]
traj = sc.dynamics_example(P, K, settings=SETTINGS)
display(Image(filename=str(sc.plot_dynamics(traj, OUT / "dynamics.png"))))
'''),
    code(r'''
def rates(pred):
    sel = [e for e in entries if pred(e)]
    return np.array([e["success_rate"] for e in sel]), sum(e["global"] for e in sel), sum(e["runs"] for e in sel)

res0 = rates(lambda e: e["shortcut"] and e["w_init_norm"] == 0)
resr = rates(lambda e: e["shortcut"] and e["w_init_norm"] != 0)
cnnr = rates(lambda e: not e["shortcut"] and e["w_init_norm"] != 0)
cnn0 = rates(lambda e: not e["shortcut"] and e["w_init_norm"] == 0)
spur = sum(e["spurious"] for e in entries if not e["shortcut"] and e["w_init_norm"] != 0)
RESULT = {"shortcut_w0_zero": res0[1] / res0[2], "shortcut_random_w0": resr[1] / resr[2],
          "cnn_random_w0": cnnr[1] / cnnr[2], "cnn_w0_zero": cnn0[1] / cnn0[2], "spurious_runs": int(spur)}
text = f"""**Measured** ({SETTINGS.runs} random teachers per configuration, {SETTINGS.steps} steps, lr {SETTINGS.lr};
p in {PS}, k in {KS}; pooled over configurations and warm-up on/off):

| variant | runs reaching the global minimum | min-max over (p, k) |
|---|---|---|
| ResNet (shortcut), w0 = 0 | {res0[1]}/{res0[2]} = {res0[1] / res0[2]:.3f} | {res0[0].min():.3f}-{res0[0].max():.3f} |
| ResNet (shortcut), random w0 | {resr[1]}/{resr[2]} = {resr[1] / resr[2]:.3f} | {resr[0].min():.3f}-{resr[0].max():.3f} |
| CNN (no shortcut), random w0 | {cnnr[1]}/{cnnr[2]} = {cnnr[1] / cnnr[2]:.3f} | {cnnr[0].min():.3f}-{cnnr[0].max():.3f} |
| CNN (no shortcut), w0 = 0 | {cnn0[1]}/{cnn0[2]} = {cnn0[1] / cnn0[2]:.3f} | {cnn0[0].min():.3f}-{cnn0[0].max():.3f} |

Without the shortcut {spur} runs from a random filter ended at the spurious minimum (w pointing away from w*).
The claim holds in these runs: the shortcut with w0 = 0 succeeds in {res0[1] / res0[2]:.1%} of runs against
{cnnr[1] / cnnr[2]:.1%} for the plain CNN from a random filter."""
display(Markdown(text))
'''),
])

# --------------------------------------------------------------------------- 07
NB07 = ("07_phase_diagram", r"""
# 7. Phase diagram: kernel-regression accuracy on the (w_var, b_var) plane

**Claim** (Schoenholz et al. 2017; Lee et al. 2018 for the NNGP). The weight and bias variances
(w_var, b_var) of a deep FFNet split into an ordered and a chaotic phase at the critical line
chi_1 = 1; off the line input correlations converge to a fixed point geometrically, on a depth scale
xi_c, so the kernel forgets its inputs and regression accuracy falls with depth, the faster the
farther from the line. A ResNet with branches scaled by alpha = L^-gamma (gamma = 1/2, 1) stays near
the identity map and keeps its accuracy at every depth, in either phase.

`reskernel.studies.phases.study` places the grid points and one point on the critical line
(`rk.critical_line`) per b_var, labels each with the FFNet's phase and chi_1
(`rk.signal_propagation`), and measures the test accuracy of NTK/NNGP ridge regression (float64
kernels, ridge 1e-6 × mean diagonal) on MNIST 4 vs 9, inputs centred and on the unit sphere.
""", [
    code(r'''
from reskernel.studies import phases

ACTIVATIONS = ("erf",) if SMALL else ("erf", "relu")
W_VARS = (0.5, 3.0) if SMALL else (0.5, 1.0, 2.0, 4.0)
B_VARS = (0.05,) if SMALL else (0.0, 0.05, 1.0)
DEPTHS = (1, 10, 100) if SMALL else (1, 10, 100, 1000)
ARCHS = ("ffnet", "resnet:1") if SMALL else ("ffnet", "resnet:0.5", "resnet:1")
N = 60 if SMALL else 200
res = phases.study("mnist2", activations=ACTIVATIONS, w_vars=W_VARS, b_vars=B_VARS, depths=DEPTHS, archs=ARCHS,
                   n_train=N, n_test=N, out=OUT / ("study_small" if SMALL else "study"), progress=False)
rows = res["rows"]
print(f"{len(rows)} rows, {len(res['computed'])} units computed, {len(res['resumed'])} resumed")
for png in res["pngs"]:
    if png.name.endswith("_ntk.png"):
        display(Image(filename=str(png)))
'''),
    md("Mean NTK accuracy by distance to the critical line (the FFNet's |log chi_1| at the point), and what "
       "each architecture loses from the first to the last depth:"),
    code(r'''
display(Markdown(phases.depth_table(rows, "ntk")))
display(Markdown(phases.resnet_table(rows, "ntk")))
for act in ACTIVATIONS:
    print(f"{act}, FFNet, every point:")
    display(Markdown(phases.point_table(rows, act, "ffnet", "ntk")))
'''),
    code(r'''
curves = phases.curves(rows, "ntk")
L0, L1 = DEPTHS[0], DEPTHS[-1]

def loss(arch, on_line):
    out = [acc[L0] - acc[L1] for (a, ar, w, b), (r, acc) in curves.items()
           if ar == arch and r["on_line"] == on_line and L0 in acc and L1 in acc]
    return max(out) if out else float("nan")

ff_off, ff_on = loss("ffnet", False), loss("ffnet", True)
res_worst = max(loss(a, s) for a in ARCHS if a != "ffnet" for s in (False, True))
RESULT = {"ffnet_off_line_loss": ff_off, "ffnet_on_line_loss": ff_on, "resnet_worst_loss": res_worst,
          "accuracy_first": {f"{k[0]} {k[1]} {k[2]:.4g} {k[3]:g}": v[1].get(L0) for k, v in curves.items()},
          "accuracy_last": {f"{k[0]} {k[1]} {k[2]:.4g} {k[3]:g}": v[1].get(L1) for k, v in curves.items()}}
holds = ff_off > ff_on and res_worst <= 0.05
text = (f"**Measured** (NTK regression, float64, MNIST2 {N} train / {N} test, depths {L0} to {L1}): off the "
        f"critical line the FFNet lost up to {100 * ff_off:.1f} points of accuracy, on it up to {100 * ff_on:.1f}; "
        f"the ResNets ({', '.join(a for a in ARCHS if a != 'ffnet')}) lost at most {100 * res_worst:.1f} points "
        "at any point of the grid. "
        + ("The claim holds in this run." if holds else "The claim is NOT borne out in this run.")
        + " The full study, with tanh, CIFAR2, depth 1000 and float32, is docs/results/phases.md.")
display(Markdown(text))
'''),
])

# --------------------------------------------------------------------------- 08
NB08 = ("08_model_selection", r"""
# 8. Model selection on ten-class MNIST, and Lee et al. 2018's Table 1

**Claim.** Choosing an infinitely wide network (FFNet or ResNet with alpha = L^-gamma; depth,
weight and bias variances, activation) and its kernel (NNGP or NTK) on a validation split taken
from the training files, never looking at test labels, gives a model whose test accuracy is close
to its validation accuracy; the NNGP's marginal likelihood chooses from the training images alone.
Lee et al. 2018's Table 1 NNGPs, trained on 1,000 images (MNIST: ReLU, depth 20, sigma_w^2 = 1.45,
sigma_b^2 = 0.28, published 0.9279; CIFAR-10: depth 7, 1.28, 0.00, published 0.3608), reproduce their
test accuracy within about a point on our images.

`reskernel.studies.selection.study` scores every grid model on the validation images (posterior mean
K_*x (K + jitter I)^-1 Y, one float64 Cholesky per kernel, argmax against the label) and, for the NNGP,
the log marginal likelihood with its closed-form amplitude; `choose` picks from those rows alone, and
test predictions are computed for the chosen models only. `selection.lee2018` runs the paper's
models: images standardized per image, K^0 = sigma_w^2 x.x'/d + sigma_b^2, targets 0.9 / -0.1.
""", [
    code(r'''
from reskernel.studies import selection

if SMALL:
    SIZES, GRID, LEE_TEST, LEE_DATA = dict(n_train=100, n_val=100, n_test=500), selection.SMALL_GRID, 1000, ("mnist",)
else:
    SIZES, GRID, LEE_TEST, LEE_DATA = dict(n_train=1000, n_val=1000, n_test=None), selection.DEFAULT_GRID, None, \
        ("mnist", "cifar10")
res = selection.study("mnist", **SIZES, **GRID, out=OUT / ("study_small" if SMALL else "study"), progress=False)
print(f"{len(res['rows'])} grid models, {len(res['computed'])} grid points computed, {len(res['resumed'])} resumed; "
      f"{len(res['evaluated'])} chosen model(s) tested now")
display(Image(filename=str(res["pngs"][0])))
'''),
    md("Best validation accuracy over (w_var, b_var) at each depth, and the chosen models: by validation "
       "accuracy over the whole grid and within each (arch, kernel), and the NNGP by marginal likelihood. "
       "Test accuracy and MSE exist for these models only."),
    code(r'''
display(Markdown(selection.depth_table(res["rows"])))
display(Markdown(selection.chosen_table(res["chosen"])))
'''),
    md("Lee et al.'s Table 1 models, trained on the first 100 images of each class in file order:"),
    code(r'''
lee = {d: selection.lee2018(d, n_test=LEE_TEST, out=OUT / ("lee_small" if SMALL else "lee"), progress=False)["row"]
       for d in LEE_DATA}
display(Markdown(selection.lee_table(list(lee.values()))))
for d, r in lee.items():
    print(f"{d}: {r['test_files_note']}")
'''),
    code(r'''
best = next(c for c in res["chosen"] if c["criterion"] == "val_accuracy" and c["scope"] == "all")
by_lml = next((c for c in res["chosen"] if c["criterion"] == "lml" and c["scope"] == "all"), None)
RESULT = {"chosen_val_accuracy": best["val_accuracy"], "chosen_test_accuracy": best["test_accuracy"],
          "lml_test_accuracy": by_lml["test_accuracy"] if by_lml else None,
          "lee": {d: {"accuracy": r["test_accuracy"], "published": r["published"], "n_test": r["n_test"]}
                  for d, r in lee.items()}}
gap = best["val_accuracy"] - best["test_accuracy"]
lee_text = "; ".join(f"{d} {r['test_accuracy']:.4f} on {r['n_test']:,} test images against the published "
                     f"{r['published']:.4f} ({100 * (r['test_accuracy'] - r['published']):+.2f} points)"
                     for d, r in lee.items())
holds = abs(gap) < 0.05 and all(abs(r["test_accuracy"] - r["published"]) < 0.015 for r in lee.values())
text = (f"**Measured** (MNIST, {res['rows'][0]['n_train']} training / {res['rows'][0]['n_val']} validation / "
        f"{best['n_test']:,} test images, {len(res['rows'])} grid models): the validation choice is "
        f"{selection.chosen_table([best]).splitlines()[-1].split('|')[4].strip()}, validation accuracy "
        f"{best['val_accuracy']:.3f}, test accuracy {best['test_accuracy']:.3f} (gap {100 * gap:+.1f} points)"
        + (f"; the marginal likelihood chose an NNGP with test accuracy {by_lml['test_accuracy']:.3f}" if by_lml else "")
        + f". Lee et al.'s models: {lee_text}. "
        + ("The claim holds in this run." if holds else "The claim is not borne out at these sizes"
           + (" (small mode: 100 training images and 1,000 test images for Lee et al.'s model)." if SMALL else "."))
        + " The full study, with CIFAR-10 and the timings, is docs/results/model_selection.md.")
display(Markdown(text))
'''),
])

# --------------------------------------------------------------------------- 09
NB09 = ("09_conv_depth", r"""
# 9. Does the depth result carry over to convolutions?

**Claim.** As for dense nets, the kernel of a deep convolutional FFNet (a CNN) loses test accuracy
with depth while the convolutional ResNet's kernel (branch scale alpha = L^-gamma) holds it; a
global-average-pool (gap) readout helps over the dense kernels on the same images.

`reskernel.studies.conv_depth.study` computes, per (data set, arch, readout), the NNGP and NTK
(float32) on CIFAR images mean-pooled to s x s x 3: the FFNet's at every depth 1..L in one
all-depths pass (`rk.kernel(arch, images, all_depths=True)`), the ResNet's at depths 1, 2, 3, 5,
10, 20, 30, 50, 100 (up to L), each its own net of alpha = depth^-gamma; it scores each kernel
regression (float64 Cholesky, ridge 1e-6 x the mean training diagonal, argmax against the label).
Readouts: dense (FFNet / ResNet on the flattened images), flatten and gap (ConvNet / ConvResNet,
3 x 3 filters).
""", [
    code(r'''
from reskernel.studies import conv_depth

if SMALL:
    RUNS = [dict(datasets="cifar2", n_train=20, n_test=20, image_size=4, depth=4, archs="ffnet,resnet:0.5",
                 readouts="dense,gap")]
else:   # docs/results/conv_depth.md's two runs (~1 h per data set on one core of a 2-core CPU, measured in parts)
    RUNS = [dict(n_train=200, n_test=180, image_size=8, depth=100, readouts="dense,flatten,gap"),
            dict(n_train=80, n_test=80, image_size=8, depth=100, readouts="dense,flatten,gap")]
results = [conv_depth.study(out=OUT / ("study_small" if SMALL else "study"), progress=False, **run) for run in RUNS]
for got in results:
    print(f"{len(got['rows'])} rows, units computed {len(got['computed'])}, resumed {len(got['resumed'])}")
'''),
    md("Test accuracy at chosen depths, the best over every depth 1..L and the drop from it to the deepest net:"),
    code(r'''
for got in results:
    display(Markdown(conv_depth.table(got["rows"])))
rows = results[0]["rows"]
display(Image(filename=str(conv_depth.plot_conv_depths(rows, OUT / "conv_depth.png"))))
'''),
    code(r'''
def drops(rows):
    """{(dataset, arch, readout, kernel): (best, best depth, deepest)} of the study's rows."""
    keys = sorted({(r["dataset"], r["arch"], r["readout"], r["kernel"]) for r in rows})
    return {k: conv_depth.drop([r for r in rows if (r["dataset"], r["arch"], r["readout"], r["kernel"]) == k])
            for k in keys}

d = drops(rows)
conv_ff = max(b - last for (ds, a, ro, k), (b, _, last) in d.items() if a == "ffnet" and ro != "dense")
conv_res = max(b - last for (ds, a, ro, k), (b, _, last) in d.items() if a != "ffnet" and ro != "dense")
deepest = {f"{ds} {a} {ro} {k}": last for (ds, a, ro, k), (_, _, last) in d.items()}
gain = [deepest[f"{ds} {a} gap {k}"] - deepest[f"{ds} {a} dense {k}"] for (ds, a, ro, k) in d if ro == "gap"]
RESULT = {"convnet_worst_drop": conv_ff, "convresnet_worst_drop": conv_res, "accuracy_deepest": deepest,
          "gap_minus_dense_mean": float(np.mean(gain)) if gain else None}
holds = conv_ff > conv_res + 0.02 and (not gain or np.mean(gain) > 0)
L = max(r["max_depth"] for r in rows)
text = (f"**Measured** ({rows[0]['n_train']} train / {rows[0]['n_test']} test, {rows[0]['image_size']}x"
        f"{rows[0]['image_size']} images, depths 1 to {L}): the ConvNet kernels lost up to {100 * conv_ff:.1f} "
        f"points between their best depth and depth {L}, the ConvResNet kernels up to {100 * conv_res:.1f}"
        + (f"; gap minus dense at depth {L}, averaged over archs and kernels: {100 * np.mean(gain):+.1f} points"
           if gain else "") + ". "
        + ("The claim holds in this run." if holds else "The claim is not borne out at these sizes"
           + (" (small mode: depth 4, 20 images)." if SMALL else "."))
        + " The full study is docs/results/conv_depth.md.")
display(Markdown(text))
'''),
])

NOTEBOOKS = [NB01, NB02, NB03, NB04, NB05, NB06, NB07, NB08, NB09]


def main():
    for name, title, cells in NOTEBOOKS:
        print(build(name, title, cells))


if __name__ == "__main__":
    main()
