"""Shared helpers of the benchmark scripts: options, the pinned neural-tangents
subprocess, fresh-process cold timings, atomic JSON results.

Timings: `min` over repeats (other processes share the CPU; the minimum is the
least disturbed run). Nothing here is imported by reskernel or its tests.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DEFAULT_NT_PYTHON = ROOT / ".venv-nt" / "bin" / "python"
# Bumped when reskernel's fast path or a benchmark's method changes: run_all.py reruns
# results written under another version instead of skipping them.
VERSION = 6


def nt_python(option=None) -> Path:
    """The pinned environment's python: --nt-python, else $RESKERNEL_NT_PYTHON, else .venv-nt."""
    path = Path(option or os.environ.get("RESKERNEL_NT_PYTHON") or DEFAULT_NT_PYTHON)
    if not path.exists():
        raise SystemExit(f"neural-tangents python not found at {path}; build it with `make nt-env` "
                         "or pass --nt-python / set RESKERNEL_NT_PYTHON")
    return path


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_ENABLE_X64")}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT), **extra)
    return env


def run_json(python, script, args, timeout=7200):
    """Run `python script args...` in a fresh process; its last stdout line is JSON."""
    proc = subprocess.run([str(python), str(script), *map(str, args)], capture_output=True, text=True,
                          env=clean_env(), timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{script} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def timed(fn, block):
    t0 = time.perf_counter()
    out = fn()
    block(out)
    return time.perf_counter() - t0, out


def machine():
    import jax
    import numpy as np
    info = {"platform": platform.platform(), "python": platform.python_version(), "jax": jax.__version__,
            "numpy": np.__version__, "devices": [str(d) for d in jax.devices()], "cpu_count": os.cpu_count(),
            "loadavg_at_start": os.getloadavg()}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def write_result(name, payload):
    """Atomically write benchmarks/results/<name>.json (temp file in the same dir, then os.replace)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = dict(payload, written=time.strftime("%Y-%m-%dT%H:%M:%S"), loadavg_at_end=os.getloadavg(),
                   benchmark_version=VERSION)
    fd, tmp = tempfile.mkstemp(dir=RESULTS, prefix=f".{name}.", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=1)
    os.replace(tmp, RESULTS / f"{name}.json")
    print(f"wrote {RESULTS / (name + '.json')}", file=sys.stderr)


def unit_inputs(n, d, seed=0):
    import numpy as np
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def parser(doc, name, **defaults):
    """argparse parser with the options every comparison script shares: --d, --repeats,
    --nt-python, --name (the results/<name>.json file); `defaults` add script options
    (--key value, type taken from the default)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    for key, value in defaults.items():
        ap.add_argument("--" + key.replace("_", "-"), type=type(value), default=value)
    ap.add_argument("--d", type=int, default=784)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--nt-python", default=None)
    ap.add_argument("--name", default=name)
    return ap


@contextlib.contextmanager
def session(args, n, **fields):
    """(nt_python, out, tmp) for one comparison run: the pinned python, the result dict
    (machine, sizes, float32) and a temporary directory holding x.npz, the unit inputs
    both libraries read."""
    import numpy as np
    nt_py = nt_python(args.nt_python)
    out = dict({"machine": machine(), "n": n, "d": args.d, "dtype": "float32", "nt_python": str(nt_py),
                "cases": {}}, **fields)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.savez(tmp / "x.npz", x=unit_inputs(n, args.d))
        yield nt_py, out, tmp


def worker(python, script, task, tmp, out_name="o.npy"):
    """Run rk_worker.py / nt_worker.py on tmp/x.npz with `task` (a dict); its JSON result."""
    path = tmp / f"{Path(script).stem}.json"
    path.write_text(json.dumps(task))
    return run_json(python, HERE / script, [path, tmp / "x.npz", tmp / out_name])
