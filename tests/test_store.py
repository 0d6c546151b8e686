"""The result store: concurrent writers keep every row, the CSV follows the JSON, files get the
umask's permissions, damaged files are named, and --out folders are checked."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reskernel.studies import _store
from reskernel.studies._store import Table, check_out_dir, locked, read_document, write_json_atomic

STORE = Path(_store.__file__)

# A writer that loads _store.py alone (standard library only: starts in milliseconds) and merges
# its rows one at a time, each a separate read-merge-write.
WRITER = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("store", sys.argv[1])
store = importlib.util.module_from_spec(spec)
spec.loader.exec_module(store)
table = store.Table(sys.argv[2], "rows", ("writer", "i"))
for i in range(int(sys.argv[4])):
    table.merge([{"writer": sys.argv[3], "i": i, "value": i * i}], meta={"last": sys.argv[3]})
"""


def test_concurrent_writers_keep_all_rows(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(STORE), str(tmp_path), f"w{k}", "25"])
             for k in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 4
    rows = Table(tmp_path, "rows", ("writer", "i")).read()
    assert sorted((r["writer"], r["i"]) for r in rows) == sorted((f"w{k}", i) for k in range(4) for i in range(25))
    with open(tmp_path / "rows.csv") as f:
        assert len(list(csv.DictReader(f))) == 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv", "rows.json"]  # no lock or temporary files


def test_merge_replaces_same_key_and_keeps_others(tmp_path):
    table = Table(tmp_path, "t", ("a", "b"))
    assert table.merge() == [] and not list(tmp_path.iterdir())  # nothing stored: nothing written
    table.merge([{"a": 1, "b": [1, 2], "v": 1.0}, {"a": 2, "b": [3], "v": 2.0}], meta={"m": 1})
    rows = table.merge([{"a": 1, "b": [1, 2], "v": 5.0}])
    assert [(r["a"], r["v"]) for r in rows] == [(1, 5.0), (2, 2.0)]
    assert json.loads(table.json.read_text())["meta"] == {"m": 1}  # kept when not given
    assert table.csv.read_text().splitlines() == ["a,b,v", "1,1 2,5.0", "2,3,2.0"]


def test_csv_is_regenerated_from_json(tmp_path):
    table = Table(tmp_path, "t", ("a",))
    table.merge([{"a": i} for i in range(3)])
    table.csv.write_text("a\n0\n")  # a CSV left behind by a run killed between the two writes
    assert table.merge() == [{"a": 0}, {"a": 1}, {"a": 2}]
    assert table.csv.read_text().splitlines() == ["a", "0", "1", "2"]


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_files_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        Table(tmp_path, "t", ("a",)).merge([{"a": 1}])
        write_json_atomic(tmp_path / "x.json", {})
    finally:
        os.umask(old)
    for name in ("t.json", "t.csv", "x.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


@pytest.mark.parametrize("text, match", [
    ('{"rows": [{"a": 1}', "not valid JSON"),
    ("[1, 2]", "holds an array, not the JSON object"),
    ('{"rows": {"a": 1}}', "entry 'rows' is an object, not an array"),
    ('{"rows": [{"b": 1}]}', "row 0 lacks a"),
    ('{"rows": [3]}', "row 0 lacks a"),
])
def test_damaged_file_is_named_with_what_to_do(tmp_path, text, match):
    (tmp_path / "t.json").write_text(text)
    with pytest.raises(ValueError, match=match) as e:
        Table(tmp_path, "t", ("a",)).merge()
    assert str(tmp_path / "t.json") in str(e.value) and "move it away" in str(e.value)
    assert read_document(tmp_path / "absent.json") is None


def test_lock_is_exclusive_and_removed(tmp_path):
    import fcntl

    with locked(tmp_path):
        fd = os.open(tmp_path / _store.LOCK_NAME, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    assert not (tmp_path / _store.LOCK_NAME).exists()


def test_check_out_dir(tmp_path, monkeypatch):
    (tmp_path / "f").write_text("")
    assert check_out_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # checking creates nothing
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_out_dir(tmp_path / "f")
    with pytest.raises(ValueError, match="is a file"):
        check_out_dir(tmp_path / "f" / "sub")
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    with pytest.raises(ValueError, match="permission denied"):
        check_out_dir(tmp_path)
    with pytest.raises(ValueError, match="not writable"):
        check_out_dir(tmp_path / "new")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_check_out_dir_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(ValueError, match="permission denied"):
        check_out_dir(ro)


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_plots_follow_the_umask(tmp_path, mask):
    from reskernel.plotting import figure, save

    fig, ax = figure()
    ax.plot([0, 1], [0, 1])
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    old = os.umask(mask)
    try:
        save(fig, tmp_path / "p.png")
    finally:
        os.umask(old)
    assert (tmp_path / "p.png").stat().st_mode & 0o777 == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]  # no temporary file left


def test_concurrent_study_runs_keep_both_runs_rows(tmp_path):
    """Two `sweep` commands over other widths, started together into one --out (real processes,
    JAX and all): both runs' cells are stored. The suite's one concurrent CLI run: the store's
    Table under concurrent writers is test_concurrent_writers_keep_all_rows, and each study's
    merging beside another run is tested in-process in its own file (test_lengths.py,
    test_phases.py, test_depth_study.py, test_training_studies.py). The sweep stands for them
    all because its store path, update_document, is the one the writers above do not use. One
    tiny cell per run (a subprocess start-up, importing JAX, is most of the time)."""
    from parallel_runs import run_together

    out = tmp_path / "out"
    base = ["sweep", "--out", str(out), "--archs", "ffnet", "--depths", "2", "--seeds", "2", "--n-inputs", "4",
            "--no-plot"]
    run_together(tmp_path, [base + ["--widths", "16"], base + ["--widths", "32"]])
    stored = json.loads((out / "sweep.json").read_text())
    assert set(stored["cells"]) == {"ffnet|2|16", "ffnet|2|32"}
    assert all(c["seeds"] == [0, 1] and len(c["ntk"]["frob"]) == 2 for c in stored["cells"].values())
    assert stored["config"]["widths"] == [16, 32]
    assert sorted(p.name for p in out.iterdir()) == ["sweep.json"]  # no lock or temporary files
