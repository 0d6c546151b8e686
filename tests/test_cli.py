import json
import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from reskernel.cli import main


def test_demo_writes_results_and_plot(tmp_path):
    res = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--widths", "32,512", "--depth", "3",
                                    "--seeds", "3"])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "demo.json").read_text())["rows"]
    assert {r["width"] for r in rows} == {32, 512}
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    for arch in ("FFNet", "ResNet(gamma=1)"):
        err = {r["width"]: r["rel_error_median"] for r in rows if r["arch"] == arch}
        # 16x the width: error about 4x smaller (3 seeds: generous band)
        assert 1.8 < err[32] / err[512] < 9, err


def test_demo_rejects_empty_widths(tmp_path):
    res = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--widths", ","])
    assert res.exit_code != 0 and "at least one width" in res.output


def test_commands_registered():
    ctx = click.Context(main)
    assert {"demo", "lengths", "shortcut", "regress", "sweep", "skipinit", "fromage"} <= set(main.list_commands(ctx))


COMMANDS = {"demo", "lengths", "shortcut", "regress", "sweep", "skipinit", "fromage", "phases", "select", "uncertainty",
            "curves", "depths", "convdepths"}


def _run(args):
    return CliRunner().invoke(main, args)


def test_help_is_fast_and_imports_no_jax():
    # The listing comes from a static table: no study module (and no JAX) is imported.
    code = ("import sys; from reskernel.cli import main\n"
            "try:\n    main(['-h'], prog_name='reskernel')\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "assert 'jax' not in sys.modules and 'reskernel.studies' not in sys.modules, 'imported'")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    for name in COMMANDS:
        assert f"  {name} " in res.stdout, res.stdout
    assert "--version" in res.stdout and "-h, --help" in res.stdout


def test_commands_resolve_and_their_help():
    ctx = click.Context(main)
    assert set(main.list_commands(ctx)) == COMMANDS
    for name in COMMANDS:
        assert main.get_command(ctx, name).name == name
        res = _run([name, "-h"])
        assert res.exit_code == 0 and "Usage:" in res.output and "--out" in res.output, (name, res.output)


def test_version():
    import reskernel

    res = _run(["--version"])
    assert res.exit_code == 0 and reskernel.__version__ in res.output


def test_every_option_has_help():
    ctx = click.Context(main)
    for name in ("demo", "regress", "sweep"):
        for p in main.get_command(ctx, name).params:
            if isinstance(p, click.Option):
                assert p.help and p.help.strip(), (name, p.opts)
    classes = next(p for p in main.get_command(ctx, "regress").params if p.name == "classes")
    assert "4,9" in classes.help and "airplane,automobile" in classes.help


@pytest.mark.parametrize("args, option", [
    (["demo", "--depth", "0"], "--depth"),
    (["demo", "--seeds", "0"], "--seeds"),
    (["demo", "--widths", "-64"], "--widths"),
    (["demo", "--widths", "64,x"], "--widths"),
    (["sweep", "--seed", "-1"], "--seed"),
    (["sweep", "--archs", "mlp"], "--archs"),
    (["sweep", "--depths", "0"], "--depths"),
    (["regress", "--seed", "-1"], "--seed"),
    (["regress", "--n-train", "1"], "--n-train"),
    # the study commands
    (["lengths", "--seed", "-1"], "--seed"),
    (["lengths", "--b", "nan"], "--b"),
    (["lengths", "--gain", "inf"], "--gain"),
    (["lengths", "--seeds", "1"], "--seeds"),
    (["shortcut", "--p", "0"], "--p"),
    (["shortcut", "--k", "0"], "--k"),
    (["shortcut", "--runs", "0"], "--runs"),
    (["shortcut", "--steps", "0"], "--steps"),
    (["shortcut", "--warmup-steps", "-1"], "--warmup-steps"),
    (["shortcut", "--steps", "10", "--warmup-steps", "11"], "--warmup-steps"),
    (["shortcut", "--lr", "0"], "--lr"),
    (["shortcut", "--lr", "inf"], "--lr"),
    (["shortcut", "--warmup-factor", "2"], "--warmup-factor"),
    (["shortcut", "--teacher-norm", "0"], "--teacher-norm"),
    (["shortcut", "--a-init-scale", "nan"], "--a-init-scale"),
    (["shortcut", "--seed", "-1"], "--seed"),
    *[([cmd, opt, value], opt) for cmd in ("skipinit", "fromage")
      for opt, value in (("--width", "0"), ("--steps", "0"), ("--batch-size", "0"), ("--seed", "-1"),
                         ("--seeds", "0"), ("--depths", "0,3"), ("--depths", "3,x"))],
    (["skipinit", "--lr", "-0.1"], "--lr"),
])
def test_bad_numbers_are_usage_errors(tmp_path, args, option):
    res = _run(args + ["--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and option in res.output and "Traceback" not in res.output, res.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_out_must_be_a_writable_folder_before_computing(tmp_path, monkeypatch, name):
    (tmp_path / "file").write_text("x")
    res = _run([name, "--out", str(tmp_path / "file")])
    assert res.exit_code == 2 and "--out" in res.output and "is a file" in res.output, res.output
    res = _run([name, "--out", str(tmp_path / "file" / "sub")])
    assert res.exit_code == 2 and "is a file" in res.output, res.output
    monkeypatch.setattr(os, "access", lambda *a, **k: False)  # as root, no folder is read-only
    res = _run([name, "--out", str(tmp_path / "new")])
    assert res.exit_code == 2 and "not writable" in res.output and not (tmp_path / "new").exists(), res.output


def test_demo_plot_shows_guide_line_and_seeds(tmp_path, monkeypatch):
    import reskernel.plotting as plotting
    from reskernel.cli import _plot_demo

    figs = []
    monkeypatch.setattr(plotting, "save", lambda fig, path: figs.append(fig))
    rows = [{"arch": a, "depth": 3, "width": w, "seeds": 5, "rel_error_median": e / w ** 0.5,
             "rel_error_p5": 0.8 * e / w ** 0.5, "rel_error_p95": 1.2 * e / w ** 0.5}
            for a, e in (("FFNet", 1.0), ("ResNet(gamma=1)", 2.0)) for w in (16, 64, 256)]
    _plot_demo(rows, tmp_path / "demo.png")
    ax = figs[0].axes[0]
    guide = [line for line in ax.lines if "m^{-1/2}" in line.get_label()]
    assert len(guide) == 1 and "5 seeds" in ax.get_title()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("m^{-1/2}" in t for t in labels)


STUDIES = ("lengths", "shortcut", "skipinit", "fromage")


def test_every_option_of_the_studies_has_help_and_its_default():
    ctx = click.Context(main)
    for name in STUDIES:
        for p in main.get_command(ctx, name).params:
            if not isinstance(p, click.Option) or p.is_flag:
                continue
            assert p.help and p.help.strip(), (name, p.opts)
            if p.name != "data_dir":  # default: $RESKERNEL_DATA, said in the help
                assert (p.show_default and p.default not in (None, ())) or "[default:" in p.help, (name, p.opts)


def test_study_commands_take_h_also_when_invoked_alone():
    # A command invoked alone (tests, scripts) makes its help option from its own settings, and click
    # keeps that option: with --help only, `reskernel NAME -h` would fail afterwards.
    ctx = click.Context(main)
    for name in STUDIES:
        command = main.get_command(ctx, name)
        assert "-h" in command.make_context(name, [], resilient_parsing=True).help_option_names, name
