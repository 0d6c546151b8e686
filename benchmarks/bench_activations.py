"""reskernel vs neural-tangents 0.6.5: analytic NTK of FFNets and ResNets with erf, GELU and
tanh (and any of sin, cos, abs) at non-default variances, n unit inputs, float32, one depth;
cold (fresh process, incl. compilation) and warm; identical inputs (one temp npz) in the same
run; ratios printed. The issue's targets: >= 30x faster than neural-tangents warm, and for the
closed-form activations within 2x of reskernel's own time for the default ReLU nets (FeedForward
and ResNet with every default, timed in the same run on the same inputs).

The nets: reskernel.FeedForward(depth, w_var, b_var, activation, in_var) and
ResNet(depth, gamma, w_var, b_var, activation, in_var, out_var); neural-tangents' the stax net of
tests/nt_reference/compute.py's `stax_mapped` (docs/conventions.md, "Rescaling to
neural-tangents' stax"), whose kernels equal reskernel's without rescaling. erf and GELU are
closed forms in both; tanh is numerical in both: reskernel's Hermite series against
stax.ElementwiseNumerical(jnp.tanh, --tanh-deg) (Gauss-Hermite quadrature; default deg = 25,
neural-tangents' recommended start and its fastest useful setting, so the agreement column
carries its quadrature error).

Inputs: the Gaussian rows of bench_analytic (seed 0), normalized in float64 and rounded to
float32 (--inputs float64-normalized, the default): their squared norms agree to ~1e-8, within
the 2^-22 that reskernel's general archs need to use one table of the input correlation (its
fast path). bench_analytic's rows are normalized in float32 and spread by 3.6e-7 (n = 4000);
with them (--inputs float32-normalized) reskernel's general archs run the float64 recursion
instead. The route taken is recorded per case ("path").

Failures and time limits: each process runs under a limit (--nt-timeout, --rk-timeout); one
killed at its limit is recorded as "timed out after X s" with the calls it finished and how
long the running call had run (a lower bound on that call's time, never an estimate).
neural-tangents runs with its address space capped (--nt-mem-gb; 0 for none), so an
allocation beyond it fails with XLA's out-of-memory error, recorded as such. Where
neural-tangents fails or times out at --n (tanh: ElementwiseNumerical holds deg^2 n^2 values
per layer, 40 GB at n = 4000, deg = 25), both libraries are also timed at each --small-n on the
first rows of the same inputs (--small-n-for failed; "all" for every case, "none" never): the
measured times and ratios at those n, and the exponent of neural-tangents' time between the two
largest; an extrapolation to --n is written only under a key saying it is not measured.

usage: python benchmarks/bench_activations.py [--n 4000] [--depth 100] [--repeats 3]
       [--nt-repeats 1] [--archs ffnet,resnet] [--activations erf,gelu,tanh] [--tanh-deg 25]
       [--w-var 1.5] [--b-var 0.05] [--in-var 1.0] [--gamma 0.5] [--out-var 1.0]
       [--small-n 250,500] [--small-n-for failed] [--nt-timeout 1800] [--rk-timeout 900]
       [--nt-mem-gb GiB] [--inputs float64-normalized] [--nt-python PATH] [--name activations]
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

# reskernel's activation name -> the stax layer of compute.py (tanh: deg appended)
LAYERS = {"erf": ["Erf"], "gelu": ["Gelu"], "tanh": ["ElementwiseNumerical", "tanh"], "sin": ["Sin"],
          "cos": ["Cos"], "abs": ["Abs"]}
INPUTS = ("float64-normalized", "float32-normalized")


def physical_gib():
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def inputs(n, d, how):
    """bench_analytic's unit rows (C.unit_inputs); "float64-normalized": renormalized in float64,
    then rounded to float32, so that every row has one squared norm to ~1e-8."""
    x = C.unit_inputs(n, d)
    if how == "float64-normalized":
        x = x.astype(np.float64)
        x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return x


def run(python, script, task, tmp, inputs_path, out_name, timeout):
    """Run rk_worker.py / nt_worker.py on inputs_path in a fresh process under `timeout`
    seconds: its JSON result, or {"error": ...}, or {"timed_out_after_s", "finished_calls_s",
    "running_call_s"} (from the worker's progress lines) when it was killed at the limit."""
    stem = Path(script).stem
    task_path, out_log, err_log = tmp / f"{stem}.json", tmp / f"{stem}.out", tmp / f"{stem}.err"
    task_path.write_text(json.dumps(task))
    cmd = [str(python), str(C.HERE / script), str(task_path), str(inputs_path), str(tmp / out_name)]
    with open(out_log, "w") as fo, open(err_log, "w") as fe:
        # own session: at the limit the worker's whole process group is killed (its id is its pid)
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=C.clean_env(), start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            killed = time.time()
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return timed_out(out_log, timeout, killed)
        except BaseException:  # e.g. Ctrl-C: the worker, in its own session, did not get it
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    if rc != 0:
        why = f"exit {rc}" if rc > 0 else f"killed by signal {-rc}" + (" (SIGKILL: e.g. the OOM killer)" if rc == -9 else "")
        return {"error": f"{why}: {err_log.read_text()[-600:]}"}
    return json.loads(out_log.read_text().strip().splitlines()[-1])


def timed_out(out_log, timeout, killed):
    events = []
    for line in out_log.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            pass
    done = [e["seconds"] for e in events if "seconds" in e]
    starts = [e["start"] for e in events if "start" in e]
    res = {"timed_out_after_s": timeout, "finished_calls_s": done}
    if len(starts) > len(done):  # a call was running: it took longer than this (a measured lower bound)
        res["running_call"] = len(done)
        res["running_call_s"] = killed - starts[-1]
    return res


def rk_timing(task, tmp, inputs_path, tag, args):
    """Min over args.repeats fresh reskernel processes (the first saves its kernel to rk_<tag>.npy)."""
    runs = []
    for r in range(args.repeats):
        res = run(sys.executable, "rk_worker.py", dict(task, save=r == 0), tmp, inputs_path, f"rk_{tag}.npy",
                  args.rk_timeout)
        if "warm" not in res:
            return res
        runs.append(res)
    return {"cold": min(r["cold"] for r in runs), "warm": min(r["warm"] for r in runs), "path": runs[0].get("path"),
            "cold_all": [r["cold"] for r in runs], "warm_all": [w for r in runs for w in r["warm_all"]],
            "jax": runs[0]["jax"], "devices": runs[0]["devices"]}


def compare(rk_res, nt_res, tmp, tag):
    """Speedups and agreement (max |reskernel - NT| / max |NT|; no rescaling: stax_mapped)."""
    a = np.load(tmp / f"rk_{tag}.npy").astype(np.float64)
    b = np.load(tmp / "nt.npy").astype(np.float64)
    return {"speedup_warm": nt_res["warm"] / rk_res["warm"], "speedup_cold": nt_res["cold"] / rk_res["cold"],
            "max_abs_diff_over_max": float(np.abs(a - b).max() / np.abs(b).max())}


def partial_speedups(ntr, rk_r):
    """What a neural-tangents process killed at its time limit measured: the calls it finished
    (0 = cold, then warm repeats) give speedups; a call still running gives a lower bound."""
    done, running, res = ntr["finished_calls_s"], ntr.get("running_call_s"), {}
    if done:
        res["speedup_cold"] = done[0] / rk_r["cold"]
    if len(done) > 1:
        res["speedup_warm"] = min(done[1:]) / rk_r["warm"]
    elif running is not None:
        key = "speedup_warm_at_least" if done else "speedup_cold_at_least"
        res[key] = running / rk_r["warm" if done else "cold"]
    return res


def describe_ratios(case):
    parts = [f"speedup {k.split('_')[1]} {case[k]:.0f}x" for k in ("speedup_warm", "speedup_cold") if k in case]
    parts += [f"speedup {k.split('_')[1]} >= {case[k]:.0f}x (NT's call still running at the limit)"
              for k in ("speedup_warm_at_least", "speedup_cold_at_least") if k in case]
    if "max_abs_diff_over_max" in case:
        parts.append(f"agreement {case['max_abs_diff_over_max']:.1e}")
    return "".join(" | " + p for p in parts)


def describe_nt(r):
    if "error" in r:  # the why, and the last line of stderr (the exception)
        why, _, err = r["error"].partition(": ")
        return f"failed ({why}): " + (err.strip().splitlines() or [""])[-1][-200:]
    if "timed_out_after_s" in r:
        s = f"timed out after {r['timed_out_after_s']:.0f} s"
        if "running_call_s" in r:
            s += f" (call {r['running_call']} {'(cold)' if r['running_call'] == 0 else '(warm)'} ran {r['running_call_s']:.0f} s)"
        return s
    return f"cold {r['cold']:.3g} s warm {r['warm']:.3g} s"


def nt_task(args, kind, act, depth):
    scales = [] if kind == "ffnet" else [depth ** -args.gamma] * depth
    layer = LAYERS[act] + ([args.tanh_deg] if act == "tanh" else [])
    return {"mode": "analytic", "kind": kind, "depth": depth, "scales": scales, "layer": layer,
            "w_var": args.w_var, "b_var": args.b_var, "in_var": args.in_var,
            "out_var": args.out_var if kind == "resnet" else 1.0, "repeats": args.nt_repeats, "save": True,
            "progress": True, "mem_limit_gb": args.nt_mem_gb}


def rk_task(args, kind, act):
    task = {"mode": "analytic", "kind": kind, "depth": args.depth, "trained": "all", "repeats": args.repeats,
            "method": "auto", "report_path": True}
    if act is None:  # the default ReLU nets (ResNet gamma = 1)
        return task
    task.update(activation=act, w_var=args.w_var, b_var=args.b_var, in_var=args.in_var)
    if kind == "resnet":
        task.update(gamma=args.gamma, out_var=args.out_var)
    return task


def small_n(args, kind, act, x, nt_py, tmp):
    """Both libraries at each --small-n (first rows of x): measured times, ratios, agreement, and
    neural-tangents' measured exponent between the two largest n it finished."""
    out = {}
    for m in sorted(int(v) for v in args.small_n.split(",") if v):
        if m >= args.n:
            continue
        path = tmp / f"x_{m}.npz"
        np.savez(path, x=x[:m])
        r = {"reskernel": rk_timing(rk_task(args, kind, act), tmp, path, f"small{m}", args)}
        r["neural_tangents"] = run(nt_py, "nt_worker.py", nt_task(args, kind, act, args.depth), tmp, path, "nt.npy",
                                   args.nt_timeout)
        if "warm" in r["reskernel"] and "warm" in r["neural_tangents"]:
            r.update(compare(r["reskernel"], r["neural_tangents"], tmp, f"small{m}"))
        elif "warm" in r["reskernel"] and "timed_out_after_s" in r["neural_tangents"]:
            r.update(partial_speedups(r["neural_tangents"], r["reskernel"]))
        out[str(m)] = r
        rk_s = r["reskernel"]
        print(f"  {kind}/{act} at n = {m}: reskernel "
              + (f"cold {rk_s['cold']:.2f} s warm {rk_s['warm']:.3f} s ({rk_s['path']})" if "warm" in rk_s else describe_nt(rk_s))
              + f" | NT {describe_nt(r['neural_tangents'])}" + describe_ratios(r), flush=True)
    done = [(int(m), r) for m, r in out.items() if "warm" in r["neural_tangents"] and "warm" in r["reskernel"]]
    res = {"runs": out}
    if len(done) >= 2:
        (m1, r1), (m2, r2) = done[-2:]
        p = math.log(r2["neural_tangents"]["warm"] / r1["neural_tangents"]["warm"]) / math.log(m2 / m1)
        res.update(nt_warm_exponent_measured=p, exponent_between=[m1, m2],
                   nt_warm_at_n_extrapolated_not_measured=r2["neural_tangents"]["warm"] * (args.n / m2) ** p)
        rk_note = "reskernel took different paths at the two n"
        if r1["reskernel"]["path"] == r2["reskernel"]["path"]:
            q = math.log(r2["reskernel"]["warm"] / r1["reskernel"]["warm"]) / math.log(m2 / m1)
            res["reskernel_warm_exponent_measured"] = q
            rk_note = f"reskernel ~ n^{q:.2f}"
        print(f"  {kind}/{act}: NT warm time ~ n^{p:.2f} between n = {m1} and {m2} (measured); {rk_note}; "
              f"extrapolating NT to n = {args.n} would give {res['nt_warm_at_n_extrapolated_not_measured']:.0f} s "
              "(an estimate, not a measurement)", flush=True)
    return res


def main(argv=None):
    ap = C.parser(__doc__, "activations", n=4000, depth=100, nt_repeats=1, archs="ffnet,resnet",
                  activations="erf,gelu,tanh", tanh_deg=25, w_var=1.5, b_var=0.05, in_var=1.0, gamma=0.5,
                  out_var=1.0, small_n="250,500", small_n_for="failed", nt_timeout=1800.0, rk_timeout=900.0,
                  nt_mem_gb=round(physical_gib(), 1), inputs=INPUTS[0])
    args = ap.parse_args(argv)
    acts = [a for a in args.activations.split(",") if a]
    for a in acts:
        if a not in LAYERS:
            ap.error(f"--activations: {a!r} is not one of {', '.join(LAYERS)}")
    if args.inputs not in INPUTS or args.small_n_for not in ("failed", "all", "none"):
        ap.error(f"--inputs must be one of {INPUTS}; --small-n-for one of failed, all, none")
    variances = {"w_var": args.w_var, "b_var": args.b_var, "in_var": args.in_var, "gamma": args.gamma,
                 "out_var": args.out_var}
    with C.session(args, args.n, depth=args.depth, trained="all", variances=variances, tanh_deg=args.tanh_deg,
                   inputs=args.inputs, nt_timeout_s=args.nt_timeout, rk_timeout_s=args.rk_timeout,
                   nt_mem_gb=args.nt_mem_gb, relu={}) as (nt_py, out, tmp):
        x = inputs(args.n, args.d, args.inputs)
        np.savez(tmp / "x.npz", x=x)  # replaces the session's (same draws, normalized as --inputs says)
        sq = np.einsum("ij,ij->i", x, x, dtype=np.float64)
        out["squared_norm_spread"] = float((sq.max() - sq.min()) / sq.max())
        for kind in args.archs.split(","):
            relu = rk_timing(rk_task(args, kind, None), tmp, tmp / "x.npz", "relu", args)
            out["relu"][kind] = relu
            print(f"{kind}/relu (default net): reskernel "
                  + (f"cold {relu['cold']:.2f} s warm {relu['warm']:.3f} s ({relu['path']})" if "warm" in relu
                     else describe_nt(relu)), flush=True)
            for act in acts:
                case = {"reskernel": rk_timing(rk_task(args, kind, act), tmp, tmp / "x.npz", act, args)}
                rk_r = case["reskernel"]
                if "warm" in rk_r and "warm" in relu:
                    case.update(over_relu_warm=rk_r["warm"] / relu["warm"], over_relu_cold=rk_r["cold"] / relu["cold"])
                ntr = run(nt_py, "nt_worker.py", nt_task(args, kind, act, args.depth), tmp, tmp / "x.npz", "nt.npy",
                          args.nt_timeout)
                case["neural_tangents"] = ntr
                if "warm" in ntr and "warm" in rk_r:
                    case.update(compare(rk_r, ntr, tmp, act))
                elif "timed_out_after_s" in ntr and "warm" in rk_r:
                    case.update(partial_speedups(ntr, rk_r))
                print(f"{kind}/{act}: reskernel "
                      + (f"cold {rk_r['cold']:.2f} s warm {rk_r['warm']:.3f} s ({rk_r['path']})" if "warm" in rk_r
                         else describe_nt(rk_r))
                      + (f", {case['over_relu_warm']:.2f}x ReLU warm ({case['over_relu_cold']:.2f}x cold)"
                         if "over_relu_warm" in case else "")
                      + f" | NT {describe_nt(ntr)}" + describe_ratios(case), flush=True)
                if args.small_n_for == "all" or (args.small_n_for == "failed" and "speedup_warm" not in case):
                    case["small_n"] = small_n(args, kind, act, x, nt_py, tmp)
                out["cases"][f"{kind}/{act}"] = case
                C.write_result(args.name, out)
        C.write_result(args.name, out)


if __name__ == "__main__":
    main()
