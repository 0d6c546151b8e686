"""Render the notebooks as HTML, with their figures and numbers, for the docs site:

    python notebooks/_render.py [--executed build/notebooks] [--out site/notebooks]

`make docs` runs this. Each notebook is executed in small mode (RESKERNEL_SMALL=1, the CI sizes)
unless an executed copy newer than the notebook and than every source file of the package is
already in --executed: the test suite saves one there for each notebook that passed when
RESKERNEL_EXECUTED_NOTEBOOKS is set, as `make test` does, so the docs step does not run them
twice. Writes <out>/<notebook>.html and <out>/index.html; exits 1 when a notebook fails.
"""
from __future__ import annotations

import argparse
import html
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

_UMASK = os.umask(0)  # read once (there is no getter), to give written files the usual mode
os.umask(_UMASK)


def notebooks() -> list:
    return sorted(HERE.glob("[0-9][0-9]_*.ipynb"))


def _fresh(copy: Path, source: Path) -> bool:
    """Whether `copy` was executed after the last change to `source` and to the package."""
    if not copy.is_file():
        return False
    newest = max([source.stat().st_mtime] + [p.stat().st_mtime for p in (ROOT / "reskernel").rglob("*.py")])
    return copy.stat().st_mtime > newest


def _write(path: Path, write):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def execute(source: Path, copy: Path, env: dict):
    """Run `source` in a fresh python3 kernel with environment `env` and save it, executed, as `copy`."""
    from nbclient import NotebookClient

    nb = nbformat.read(str(source), as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=600,
                   resources={"metadata": {"path": str(HERE)}}).execute(env=env)
    _write(copy, lambda tmp: nbformat.write(nb, tmp))
    return nb


def _title(nb) -> str:
    first = nb.cells[0].source.lstrip("# ").splitlines() if nb.cells else []
    return first[0].strip() if first else "notebook"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executed", type=Path, default=ROOT / "build" / "notebooks",
                        help="folder of executed copies: reused when fresh, written when run here")
    parser.add_argument("--out", type=Path, default=ROOT / "site" / "notebooks", help="folder for the HTML")
    args = parser.parse_args(argv)
    from nbconvert import HTMLExporter

    env = dict(os.environ, RESKERNEL_SMALL="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.setdefault("MPLBACKEND", "Agg")
    env.setdefault("RESKERNEL_NOTEBOOK_OUT", str(args.executed.resolve() / "figures"))
    exporter = HTMLExporter(template_name="lab")
    rows, failed = [], []
    for source in notebooks():
        copy = args.executed / source.name
        start = time.perf_counter()
        if _fresh(copy, source):
            nb, how = nbformat.read(str(copy), as_version=4), "executed copy reused"
        else:
            try:
                nb, how = execute(source, copy, env), "executed"
            except Exception as e:  # a cell error, a timeout, a dead kernel
                failed.append(source.name)
                print(f"{source.name}: FAILED\n{e}", file=sys.stderr)
                continue
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": _title(nb)}})
        page = args.out / f"{source.stem}.html"
        _write(page, lambda tmp: Path(tmp).write_text(body, encoding="utf-8"))
        rows.append((page.name, _title(nb)))
        print(f"{page} ({how}, {time.perf_counter() - start:.1f} s)")
    items = "\n".join(f'<li><a href="{html.escape(href)}">{html.escape(title)}</a></li>' for href, title in rows)
    index = (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>reskernel notebooks</title></head><body>\n"
             f"<h1>reskernel notebooks</h1>\n<p>Executed at the CI sizes (RESKERNEL_SMALL=1): checks of direction "
             f"and order of magnitude, not the full studies. Sources: <code>notebooks/</code>.</p>\n"
             f"<ul>\n{items}\n</ul>\n</body></html>\n")
    _write(args.out / "index.html", lambda tmp: Path(tmp).write_text(index, encoding="utf-8"))
    if failed:
        print(f"notebooks that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
