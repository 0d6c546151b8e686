"""The notebooks: stored without outputs, identical to what notebooks/_build.py writes, and
each runs top to bottom (RESKERNEL_SMALL=1) in a fresh python3 kernel of this interpreter,
ending with a Markdown summary of measured numbers.

With RESKERNEL_EXECUTED_NOTEBOOKS=<folder> (as `make test` sets it) each notebook that ran clean
is also saved there, executed, for `make docs` to render as HTML without running it again."""
import importlib.util
import json
import math
import os
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import HAS_DATA, NO_DATA

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(p.name for p in NB_DIR.glob("[0-9][0-9]_*.ipynb"))
NEEDS_DATA = ("02", "05", "07", "08", "09")  # read MNIST/CIFAR-10
_UMASK = os.umask(0)  # read once (there is no getter), to give written files the usual mode
os.umask(_UMASK)


def _script(name):
    """notebooks/<name>.py loaded as a module (the notebooks folder is no package)."""
    spec = importlib.util.spec_from_file_location(f"notebooks{name}", NB_DIR / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _builder():
    return _script("_build")


def test_notebooks_present():
    built = {f"{name}.ipynb" for name, _, _ in _builder().NOTEBOOKS}
    assert built == set(NOTEBOOKS), f"_build.py writes {sorted(built)}, folder holds {NOTEBOOKS}"
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_stored_without_outputs(name):
    raw = json.loads((NB_DIR / name).read_text())
    nb = nbformat.reads(json.dumps(raw), as_version=4)
    nbformat.validate(nb)
    assert raw["nbformat"] == 4
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "no code cells"
    assert code[0].source.splitlines()[-1] == 'SMALL = os.environ.get("RESKERNEL_SMALL", "0") == "1"'
    for c in code:
        assert c.outputs == [] and c.execution_count is None, f"stored outputs in cell {c.id}"
    assert "Claim" in nb.cells[0].source, "first cell must state the claim"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_matches_builder(name, tmp_path, monkeypatch):
    builder = _builder()
    monkeypatch.setattr(builder, "HERE", tmp_path)
    entry = next(e for e in builder.NOTEBOOKS if f"{e[0]}.ipynb" == name)
    built = builder.build(*entry)
    assert built.read_text() == (NB_DIR / name).read_text(), "notebook differs from _build.py: rerun it"


def test_kernel_is_this_interpreter():
    from jupyter_client.manager import KernelManager

    cmd = KernelManager(kernel_name="python3").format_kernel_cmd()
    assert os.path.realpath(cmd[0]) == os.path.realpath(sys.executable), cmd


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """Environment settings for the notebook kernels this module starts, as a function of the
    notebook's two-digit number (None: the tiny notebooks of the render test).

    Bytecode: where Python writes none (PYTHONDONTWRITEBYTECODE) and the environment was
    installed without .pyc files (uv's default), every kernel compiles jax, IPython and
    matplotlib from source again, ~2.5 s of CPU per kernel; the kernels then share one
    bytecode cache outside the tree (PYTHONPYCACHEPREFIX), filled by the first.

    XLA_FLAGS: the small runs of the notebooks in _COMPILE_BOUND spend nearly all their time in
    XLA compilations (dozens of small programs, each run a few times); their kernels compile
    with LLVM's optimizations off, which halves that (notebook 05: 72 -> 38 s CPU in one
    process, same RESULT). The others run long enough that optimized code pays (01 and 04
    are slower without it) and keep XLA's defaults."""
    import jax

    env = {}
    if sys.dont_write_bytecode and not sys.pycache_prefix \
            and not os.path.exists(importlib.util.cache_from_source(jax.__file__)):
        env["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("kernel_bytecode"))

    def settings(number=None):
        out = dict(env)
        if number in _COMPILE_BOUND:
            out["XLA_FLAGS"] = " ".join(filter(None, [os.environ.get("XLA_FLAGS"), "--xla_backend_optimization_level=0"]))
        return out

    return settings


_COMPILE_BOUND = ("05", "07", "08", "09")


def _set_kernel_env(monkeypatch, settings):
    if "PYTHONPYCACHEPREFIX" in settings:
        monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    for key, value in settings.items():
        monkeypatch.setenv(key, value)


def _finite(*values):
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def _check_01(r):  # errors fall with width, slopes near the CLT's -1/2
    for key, slope in r["slopes"].items():
        first, last = r["median_error_first"][key], r["median_error_last"][key]
        assert _finite(slope, first, last) and 0 < last < first < 2, (key, first, last)
        assert -1.2 < slope < -0.2, (key, slope)


def _check_02(r):  # FFNet accuracy drops with depth, the ResNets' does not
    assert r["claim_holds"], r["drops"]
    for key, acc in r["accuracy_last"].items():
        assert 0.4 <= acc <= 1.0, (key, acc)
        if ":None" not in key:
            assert acc > 0.65, (key, acc)


def _check_03(r):  # distances to the depth limits shrink polynomially; the ODE limit is not depth 1
    for name, slope in r["ntk_slope"].items():
        assert _finite(slope, r["final_ntk_error"][name]) and slope < -0.3, (name, slope)
        assert 0 <= r["final_ntk_error"][name] < 0.1, name
    assert r["final_nngp_error"]["FFNet"] < 1e-3
    assert abs(r["ode_ntk_at_0"] - r["two_layer_ntk_at_0"]) > 0.3


def _check_04(r):  # FM1: gain g multiplies the mean length by g^d; the eta = 1 ResNet explodes
    assert 0.7 < r["he_mean"] < 1.3, r["he_mean"]
    assert r["gain_0.9_mean"] < 0.5 < 2 < r["gain_1.1_mean"], r
    assert r["relu_eta_1_mean"] > 100 * r["relu_eta_b_mean"], r
    assert r["max_abs_z"] < 5, r["max_abs_z"]
    assert 1 < r["ratio_he"] and _finite(r["ratio_he_theory"])


def _check_05(r):  # the plain stream explodes, SkipInit keeps it; the fixes train where plain does not
    g = r["stream_growth"]
    assert g["plain"] > 1e4 * g["scaled"] and abs(g["skipinit"] - 1) < 1e-3 and 5 < g["batchnorm"] < 100, g
    status = r["skipinit_status"]
    assert all(v == "diverged" or v == "stalled" for k, v in status.items() if k.startswith("plain")), status
    assert any(v == "trained" for k, v in status.items() if not k.startswith("plain")), status
    assert all(0 <= a <= 1 for a in r["fromage_best"].values()) and r["fromage_best"]["fromage"] > 0.8, r


def _check_06(r):  # the shortcut from w0 = 0 succeeds (nearly) always, the plain CNN does not
    assert r["shortcut_w0_zero"] > 0.95, r
    assert r["cnn_random_w0"] < r["shortcut_w0_zero"] - 0.1 and r["spurious_runs"] > 0, r


def _check_07(r):  # off the critical line the FFNet loses more accuracy with depth than on it; the ResNet none
    assert _finite(r["ffnet_off_line_loss"], r["ffnet_on_line_loss"], r["resnet_worst_loss"]), r
    assert r["ffnet_off_line_loss"] > r["ffnet_on_line_loss"] and r["ffnet_off_line_loss"] > 0.2, r
    assert r["resnet_worst_loss"] <= 0.05 and all(0.4 <= a <= 1 for a in r["accuracy_last"].values()), r


def _check_08(r):  # the validation choice tests near its validation score; Lee et al.'s NNGP near the paper
    assert 0.5 < r["chosen_test_accuracy"] <= 1 and abs(r["chosen_val_accuracy"] - r["chosen_test_accuracy"]) < 0.25, r
    assert r["lml_test_accuracy"] is None or 0.3 < r["lml_test_accuracy"] <= 1, r
    for d, lee in r["lee"].items():
        assert abs(lee["accuracy"] - lee["published"]) < 0.05, (d, lee)


def _check_09(r):  # small mode (20 CIFAR2 images at 4x4, depth 4): accuracies above chance, drops in range
    acc = r["accuracy_deepest"]
    assert acc and all(0.5 <= a <= 1 for a in acc.values()), acc
    assert _finite(r["convnet_worst_drop"], r["convresnet_worst_drop"], r["gap_minus_dense_mean"]), r
    assert 0 <= r["convnet_worst_drop"] < 0.5 and 0 <= r["convresnet_worst_drop"] < 0.5, r


CHECKS = {"01": _check_01, "02": _check_02, "03": _check_03, "04": _check_04, "05": _check_05, "06": _check_06,
          "07": _check_07, "08": _check_08, "09": _check_09}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_runs_clean(name, tmp_path, monkeypatch, kernel_env):
    """Executes the notebook (small sizes); any cell error fails. Then checks its RESULT numbers."""
    _set_kernel_env(monkeypatch, kernel_env(name[:2]))
    monkeypatch.setenv("RESKERNEL_SMALL", "1")
    monkeypatch.setenv("RESKERNEL_NOTEBOOK_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    if name[:2] in NEEDS_DATA and not HAS_DATA:
        pytest.fail(NO_DATA, pytrace=False)
    nb = nbformat.read(str(NB_DIR / name), as_version=4)
    n_cells = len(nb.cells)
    nb.cells.append(nbformat.v4.new_code_cell('import json; print("RESULT " + json.dumps(RESULT, default=float))'))
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    summary = [o for o in nb.cells[n_cells - 1].outputs if "text/markdown" in o.get("data", {})]
    assert summary and "Measured" in summary[0]["data"]["text/markdown"], "last cell must display the Markdown summary"
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure displayed"
    pngs = list((tmp_path / "out").rglob("*.png"))
    assert pngs and all(p.stat().st_size > 1000 for p in pngs)
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    line = next(ln for ln in text.splitlines() if ln.startswith("RESULT "))
    CHECKS[name[:2]](json.loads(line[len("RESULT "):]))
    if os.environ.get("RESKERNEL_EXECUTED_NOTEBOOKS"):
        nb.cells.pop()  # the RESULT cell added above
        _save(nb, Path(os.environ["RESKERNEL_EXECUTED_NOTEBOOKS"]) / name)


def _save(nb, path):
    """Write atomically, so that a reader never finds a half-written notebook."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        nbformat.write(nb, tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ---- the docs step: notebooks/_render.py ------------------------------------------------------


def _renderer():
    return _script("_render")


def _tiny(path, source):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# 9. Tiny"), nbformat.v4.new_code_cell(source)]
    nbformat.write(nb, str(path))
    return path


def test_render_reuses_fresh_copies_and_fails_on_a_failing_notebook(tmp_path, monkeypatch, kernel_env):
    pytest.importorskip("nbconvert")
    _set_kernel_env(monkeypatch, kernel_env())
    render = _renderer()
    monkeypatch.setenv("RESKERNEL_NOTEBOOK_OUT", str(tmp_path / "figures"))
    good, bad = _tiny(tmp_path / "98_good.ipynb", "print(6 * 7)"), _tiny(tmp_path / "99_bad.ipynb", "1 / 0")
    executed, out = tmp_path / "executed", tmp_path / "site"
    # A fresh executed copy is rendered as it is, without running anything.
    executed.mkdir()
    copy = nbformat.read(str(good), as_version=4)
    copy.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="from the copy\n")]
    nbformat.write(copy, str(executed / good.name))
    monkeypatch.setattr(render, "notebooks", lambda: [good])
    assert render.main(["--executed", str(executed), "--out", str(out)]) == 0
    assert "from the copy" in (out / "98_good.html").read_text()
    assert "98_good.html" in (out / "index.html").read_text()
    # Without a copy the notebook runs, in small mode; one with a failing cell fails the step
    # and gets no page.
    small = _tiny(tmp_path / "97_small.ipynb", 'import os; print("small=" + os.environ["RESKERNEL_SMALL"])')
    monkeypatch.setattr(render, "notebooks", lambda: [small, good, bad])
    assert render.main(["--executed", str(executed), "--out", str(out)]) == 1
    assert "small=1" in (out / "97_small.html").read_text() and (executed / small.name).is_file()
    assert not (out / "99_bad.html").exists() and not (executed / bad.name).exists()
