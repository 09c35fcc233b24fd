#!/usr/bin/env python3
"""The GPU check in one command within a time budget: environment, fused-kernel check, host-sync check, benchmarks.

    OUT=/path/to/out python3 -m benchmarks.gpu_check                # on the GPU machine (~8 min)
    python -m benchmarks.gpu_check --device cpu --tiny --out /tmp/gc  # dry run of every part on CPU

Parts, in priority order; each runs in its own subprocess with a time limit, and a part is
skipped (and recorded as skipped) when the remaining budget is below what it needs:

1. ``info``                nvidia-smi, torch / CUDA / Triton versions, the GPU's properties.
2. ``fused``               fused LTC kernels (Triton via torch.compile) vs the PyTorch reference on
                           the device: forward and gradients, fp32 and bf16 inputs, contiguous and
                           channels-last, FPTT (no state gradient) and BPTT; plus their speed.
3. ``sync``                the training time loop (FPTT, BPTT, inference, ANN; uncompiled, fused LTC
                           update, bf16, 416 px) under ``torch.cuda.set_sync_debug_mode("error")``.
4. ``bench_fptt``          FPTT, T = 2, 8, 16, batch 64, 416 px, width 1, compiled, bf16 (+ the sync
                           check of the compiled time loop).
5. ``bench_infer``         inference, T = 8, batch 64, compiled.
6. ``profile_fptt``        torch.profiler over one FPTT iteration, T = 8, batch 64, 416 px, width 1,
                           bf16, channels-last: top operators and kernels by device time, time per
                           category (``benchmarks/benchmark.py --profile``). Eager with the reference LTC
                           update unless :data:`PROFILE_COMPILED` is set, then compiled (fused LTC
                           update) when ``bench_fptt`` succeeded.
7. ``bench_bptt_eager``    BPTT, T = 2, 8, batch 64, uncompiled (memory growing with T).
8. ``bench_fptt_eager``    FPTT, T = 8, batch 64, uncompiled (what torch.compile brings).
9. ``bench_ann``           the ANN twin, batch 64, compiled.
10. ``bench_bptt``         BPTT, T = 2, 8, batch 64, compiled.
11. ``bench_fptt_cudagraphs``  FPTT, T = 8, ``mode="reduce-overhead"`` (CUDA graphs).
12. ``bench_bptt16_eager``     BPTT, T = 16, batch 64, uncompiled.

Everything lands in ``$OUT`` (default ``./gpu_out``), at most eight files: ``gpu_check.log``
(every part's output), ``gpu_check.json`` (per-part status, results and the target checks),
``gpu_check.md`` (summary), ``bench.json`` and ``bench.md`` (all benchmark rows),
``fused.json``, and ``fptt_profile.json`` / ``fptt_profile.md`` (the profile). They are
rewritten after every part, so a run cut short keeps what it did.

The orchestrator imports neither torch nor the spyolo library (parts do, in their subprocesses);
it writes its files through ``spyolo.utils.io``, which needs neither. Compiler
caches go to ``.devout/`` in the repository (git-ignored), so a second run on the same machine
reuses compiled kernels.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.runner import ROOT, run
from spyolo.utils.io import atomic_write_text

GPU_SIZE = {"batch": "64", "img_size": "416", "width": "1.0"}
TINY_SIZE = {"batch": "2", "img_size": "64", "width": "0.25"}

PROFILE_COMPILED = False
"""``profile_fptt``: profile the compiled step (fused LTC update) when ``bench_fptt`` succeeded.
Off, it profiles the eager step with the reference LTC update, which fits the part's limit even
without warm compiler caches."""

PROFILE_STEM = "fptt"
"""``profile_fptt`` writes ``$OUT/<stem>_profile.json`` and ``<stem>_profile.md``."""


@dataclass
class Part:
    """One step of the session: a subprocess with a time limit."""

    name: str
    limit_s: float  # kill after this long
    min_s: float  # skip when less than this is left
    argv: list[str]
    bench: bool = False  # a benchmarks/benchmark.py run whose report is merged
    profile: bool = False  # a benchmarks/benchmark.py --profile run writing its report into the output folder
    compile_after: str | None = None  # run compiled (not eager) only when this earlier part succeeded
    result: dict = field(default_factory=dict)


# -- parts run inside subprocesses ------------------------------------------------------------


def _rel_err(a, b) -> float:
    import torch

    a, b = a.double(), b.double()
    denom = torch.linalg.vector_norm(b).item()
    diff = torch.linalg.vector_norm(a - b).item()
    return diff / denom if denom > 0 else diff


def part_info(device: str) -> dict:
    import shutil

    import torch

    if shutil.which("nvidia-smi"):
        smi = run(["nvidia-smi"], timeout=20, capture=True)
        print("nvidia-smi: timed out after 20 s" if smi.timed_out else smi.stdout)
    else:
        print("nvidia-smi: not on PATH")

    from benchmarks.machine import machine_info

    info = machine_info()
    info["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    info["cuda_available"] = torch.cuda.is_available()
    if device.startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = {
            "name": props.name,
            "memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
            "capability": f"{props.major}.{props.minor}",
        }
    for name in ("albumentations", "pycocotools"):
        try:
            __import__(name)
            info[name] = "present"
        except ImportError:
            info[name] = "absent"
    return info


def part_fused(device: str, tiny: bool) -> dict:
    """Fused (compiled) LTC update vs the reference on ``device``: values, gradients, speed."""
    import torch

    from spyolo.snn.fused import fused_ltc_update
    from spyolo.snn.ltc import ltc_update

    dev = torch.device(device)
    shape = (2, 8, 6, 10) if tiny else (64, 128, 52, 52)
    cases = []
    for low in (torch.float32, torch.bfloat16):
        for channels_last in (False, True):
            for bptt in (False, True):
                if low == torch.bfloat16 and bptt and not channels_last:
                    continue  # enough bf16 coverage; saves a compilation
                cases.append((low, channels_last, bptt))
    results = []
    ok = True
    for index, (low, channels_last, bptt) in enumerate(cases):
        gen = torch.Generator(device="cpu").manual_seed(100 + index)
        fmt = torch.channels_last if channels_last else torch.contiguous_format

        def draw(
            scale: float, shift: float, *, gen: torch.Generator = gen, fmt: torch.memory_format = fmt
        ) -> torch.Tensor:
            t = torch.randn(shape, generator=gen) * scale + shift
            return t.to(dev).contiguous(memory_format=fmt)

        z = draw(2.0, 0.0).to(low)
        cur = draw(1.5, 0.5).to(low)
        u = (torch.rand(shape, generator=gen) * 1.2).to(dev).contiguous(memory_format=fmt)
        grad_s = draw(1.0, 0.0).to(low)
        grad_u = draw(1.0, 0.0)
        outs = {}
        for name in ("reference", "fused"):
            zz = z.clone().requires_grad_()
            cc = cur.clone().requires_grad_()
            uu = u.clone().requires_grad_(bptt)
            if name == "reference":
                s, un = ltc_update(zz.float(), cc.float(), uu, 1.0)
                s = s.to(low)
            else:
                s, un = fused_ltc_update(zz, cc, uu, 1.0, kernels="inductor")
            loss = (s.float() * grad_s.float()).sum()
            if bptt:
                loss = loss + (un * grad_u).sum()
            loss.backward()
            outs[name] = (s, un, zz.grad, cc.grad, uu.grad if bptt else None)
        ref, fus = outs["reference"], outs["fused"]
        mismatch = (ref[0] != fus[0]).sum().item() / ref[0].numel()
        errs = {
            "u_new": _rel_err(fus[1], ref[1]),
            "grad_z": _rel_err(fus[2], ref[2]),
            "grad_current": _rel_err(fus[3], ref[3]),
        }
        if bptt:
            errs["grad_u_prev"] = _rel_err(fus[4], ref[4])
        finite = all(bool(torch.isfinite(t).all()) for t in fus if t is not None)
        tol = 1e-5 if low == torch.float32 else 1e-2
        same_layout = fus[0].stride() == ref[0].stride() and fus[1].stride() == ref[1].stride()
        passed = finite and mismatch <= 1e-5 and all(e <= tol for e in errs.values()) and same_layout
        ok = ok and passed
        results.append(
            {
                "dtype": str(low).replace("torch.", ""), "channels_last": channels_last, "bptt": bptt,
                "spike_mismatch_fraction": mismatch, "rel_err": errs, "tolerance": tol, "finite": finite,
                "same_layout": same_layout, "passed": passed,
            }
        )
    timing = _time_fused(dev, shape) if dev.type == "cuda" else None
    return {"shape": list(shape), "cases": results, "passed": ok, "timing": timing}


def _time_fused(dev, shape) -> dict:
    """Median ms of forward + backward (FPTT case, bf16 z/I, fp32 membrane), fused vs reference."""
    import statistics

    import torch

    from spyolo.snn.fused import fused_ltc_update
    from spyolo.snn.ltc import ltc_update

    fmt = torch.channels_last
    z = torch.randn(shape, device=dev).contiguous(memory_format=fmt).to(torch.bfloat16).requires_grad_()
    cur = torch.randn(shape, device=dev).contiguous(memory_format=fmt).to(torch.bfloat16).requires_grad_()
    u = torch.rand(shape, device=dev).contiguous(memory_format=fmt)
    grad = torch.randn(shape, device=dev).contiguous(memory_format=fmt).to(torch.bfloat16)

    def reference():
        s, _ = ltc_update(z.float(), cur.float(), u, 1.0)
        torch.autograd.backward(s.to(torch.bfloat16), grad)

    def fused():
        s, _ = fused_ltc_update(z, cur, u, 1.0, kernels="inductor")
        torch.autograd.backward(s, grad)

    out = {}
    for name, fn in (("reference", reference), ("fused", fused)):
        for _ in range(3):
            fn()
        times = []
        for _ in range(20):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        out[f"{name}_ms"] = statistics.median(times)
    numel = 1
    for s in shape:
        numel *= s
    # fused: forward reads z, I (bf16), u (fp32) and writes s (bf16), u_new (fp32); backward reads
    # z, I, u, grad_s and writes grad_z, grad_I: 28 bytes per element in all.
    out["fused_gb_per_s"] = 28 * numel / (out["fused_ms"] * 1e-3) / 1e9
    out["speedup"] = out["reference_ms"] / out["fused_ms"]
    return out


def part_sync(device: str, tiny: bool) -> dict:
    """The uncompiled time loop of each method under the CUDA sync debug mode."""
    from benchmarks.probe import ProbeConfig, ProbeSession

    size = TINY_SIZE if tiny else {"batch": "4", "img_size": "416", "width": "1.0"}
    rows = []
    for method, timesteps in (("fptt", 3), ("bptt", 2), ("infer", 2), ("ann", 1)):
        cfg = ProbeConfig(
            method=method, timesteps=timesteps, batch=int(size["batch"]), img_size=int(size["img_size"]),
            width=float(size["width"]), device=device, warmup=1, iters=1, sync_check=True,
        )
        try:
            row = ProbeSession(cfg).measure()
            rows.append({"method": method, "timesteps": timesteps, "sync_free": row["sync_free"],
                         "sync_error": row["sync_error"], "ltc_backend": row["ltc_backend"]})
        except Exception as e:  # noqa: BLE001 - record and go on with the next method
            rows.append({"method": method, "timesteps": timesteps, "error": f"{type(e).__name__}: {e}"[:400]})
    checked = [r.get("sync_free") for r in rows]
    passed = None if all(c is None for c in checked) and not any("error" in r for r in rows) else all(
        c is True for c in checked
    )
    return {"rows": rows, "passed": passed}


def run_part_here(name: str, device: str, tiny: bool, json_path: Path) -> int:
    """Entry point of a part's subprocess: run it and write its JSON."""
    funcs = {
        "info": lambda: part_info(device),
        "fused": lambda: part_fused(device, tiny),
        "sync": lambda: part_sync(device, tiny),
    }
    result = funcs[name]()
    atomic_write_text(json_path, json.dumps(result, indent=2, default=str))
    print(json.dumps(result, default=str)[:4000])
    return 0


# -- orchestration ----------------------------------------------------------------------------


def _bench_argv(methods: str, timesteps: str, size: dict, extra: list[str], device: str, tiny: bool) -> list[str]:
    argv = [
        "-m", "benchmarks.benchmark", "--methods", methods, "--timesteps", timesteps, "--batch", size["batch"],
        "--img-size", size["img_size"], "--width", size["width"], "--device", device, "--repeats",
        "1" if tiny else "3", "--warmup", "1" if tiny else "2",
    ]
    if device.startswith("cuda"):
        argv += ["--amp", "bf16", "--sync-check"]
    return argv + extra


def _profile_argv(size: dict, device: str, tiny: bool) -> list[str]:
    """``benchmarks/benchmark.py --profile`` of one FPTT iteration, eager with the reference LTC update."""
    argv = [
        "-m", "benchmarks.benchmark", "--profile", "--methods", "fptt", "--timesteps", "2" if tiny else "8",
        "--batch", size["batch"], "--img-size", size["img_size"], "--width", size["width"], "--device", device,
        "--no-compile", "--ltc-backend", "reference", "--warmup", "1", "--profile-iters", "1",
        "--stem", PROFILE_STEM,
    ]
    if device.startswith("cuda"):
        argv += ["--amp", "bf16", "--channels-last", "on"]
    return argv


def part_argv(part: Part, succeeded: set[str]) -> list[str]:
    """The part's command line, switched to the compiled step when ``part.compile_after`` succeeded."""
    argv = list(part.argv)
    if part.compile_after is not None and part.compile_after in succeeded and "--no-compile" in argv:
        argv[argv.index("--no-compile")] = "--compile"
        if "--ltc-backend" in argv:
            argv[argv.index("--ltc-backend") + 1] = "auto"
        if "--warmup" in argv:
            argv[argv.index("--warmup") + 1] = "2"
    return argv


def build_parts(device: str, tiny: bool) -> list[Part]:
    """The session's parts in priority order (see the module docstring)."""
    size = TINY_SIZE if tiny else GPU_SIZE
    compiled = ["--compile"]
    # The dry run compiles only where the GPU run's first benchmark does (CPU compiles are slow).
    maybe_compiled = ["--no-compile"] if tiny else ["--compile"]
    eager = ["--no-compile"]

    def pick(gpu, cpu):
        return cpu if tiny else gpu

    me = ["-m", "benchmarks.gpu_check", "--device", device] + (["--tiny"] if tiny else [])

    def bench(methods: str, timesteps: str, extra: list[str]) -> list[str]:
        return _bench_argv(methods, timesteps, size, extra, device, tiny)

    return [
        Part("info", 45, 5, me + ["--part", "info"]),
        Part("fused", pick(80, 240), 30, me + ["--part", "fused"]),
        Part("sync", pick(70, 240), 30, me + ["--part", "sync"]),
        Part("bench_fptt", pick(200, 900), 90, bench("fptt", pick("2,8,16", "1,2"), compiled), True),
        Part("bench_infer", pick(100, 300), 45, bench("infer", "8", maybe_compiled), True),
        Part("profile_fptt", pick(60, 240), 30, _profile_argv(size, device, tiny), profile=True,
             compile_after="bench_fptt" if PROFILE_COMPILED else None),
        Part("bench_bptt_eager", pick(80, 300), 40, bench("bptt", pick("2,8", "1,2"), eager), True),
        Part("bench_fptt_eager", pick(60, 300), 30, bench("fptt", pick("8", "2"), eager), True),
        Part("bench_ann", pick(80, 300), 40, bench("ann", "1", maybe_compiled), True),
        Part("bench_bptt", pick(150, 300), 80, bench("bptt", pick("2,8", "1,2"), maybe_compiled), True),
        Part(
            "bench_fptt_cudagraphs", pick(120, 300), 60,
            bench("fptt", pick("8", "2"), maybe_compiled + ["--compile-mode", "reduce-overhead"]), True,
        ),
        Part("bench_bptt16_eager", pick(90, 300), 45, bench("bptt", pick("16", "4"), eager), True),
    ]


def _run(argv: list[str], timeout: float, log, env: dict) -> tuple[int | None, float]:
    """Run ``python argv`` (:func:`benchmarks.runner.run`); its process group is killed at the timeout."""
    done = run([sys.executable, *argv], timeout=max(1.0, timeout), log=log, env=env)
    return done.returncode, done.seconds


def _targets(rows: list[dict], parts: list[Part]) -> list[dict]:
    """The GPU speed and memory targets (docs/performance.md), checked against the merged benchmark rows."""

    def find(method: str, t: int, compiled: bool = True, mode: str = "default") -> dict | None:
        for r in rows:
            if (r.get("method") == method and r.get("timesteps") == t and r.get("batch") == 64
                    and r.get("img_size") == 416 and bool(r.get("compile")) == compiled
                    and r.get("compile_mode", "default") == mode and not r.get("error")):
                return r
        return None

    checks = []

    def add(name: str, value, target: str, ok) -> None:
        checks.append({"check": name, "value": value, "target": target, "passed": ok})

    f8, f2, f16 = find("fptt", 8), find("fptt", 2), find("fptt", 16)
    add("FPTT T=8 b64 416 images/s", f8 and round(f8["images_per_s"], 1), ">= 250", f8 and f8["images_per_s"] >= 250)
    add("FPTT T=8 b64 peak GiB", f8 and round(f8["peak_gib"], 2), "<= 10", f8 and f8["peak_gib"] <= 10)
    flat = (f16["peak_bytes"] / f2["peak_bytes"]) if (f2 and f16) else None
    add("FPTT peak T=16 / T=2", flat and round(flat, 3), "<= 1.05", flat is not None and flat <= 1.05)
    b2, b8 = find("bptt", 2), find("bptt", 8)
    if not (b2 and b8):
        b2, b8 = find("bptt", 2, compiled=False), find("bptt", 8, compiled=False)
    grow = (b8["peak_bytes"] / b2["peak_bytes"]) if (b2 and b8) else None
    add("BPTT peak T=8 / T=2", grow and round(grow, 2), "> 1 (grows)", grow is not None and grow > 1.5)
    i8 = find("infer", 8)
    add("inference T=8 b64 images/s", i8 and round(i8["images_per_s"], 1), ">= 600", i8 and i8["images_per_s"] >= 600)
    syncs = [r.get("sync_free") for r in rows if r.get("sync_free") is not None]
    sync_part = next((p for p in parts if p.name == "sync"), None)
    eager_sync = sync_part.result.get("passed") if sync_part else None
    add("time loop sync-free (compiled runs)", f"{sum(1 for s in syncs if s)}/{len(syncs)}", "all",
        bool(syncs) and all(syncs))
    add("time loop sync-free (uncompiled, all methods)", eager_sync, "True", eager_sync is True)
    fused_part = next((p for p in parts if p.name == "fused"), None)
    fused_ok = fused_part.result.get("passed") if fused_part else None
    add("fused LTC kernels match the reference", fused_ok, "True", fused_ok is True)
    for c in checks:
        c["passed"] = bool(c["passed"])
    return checks


def _profile_summary(path: Path, compiled: bool) -> list[dict]:
    """The gist of a profile report (per configuration: total, category shares, top operators)."""
    if not path.is_file():
        return []
    rows = []
    for row in json.loads(path.read_text()).get("profiles", []):
        if row.get("error"):
            rows.append({"config_name": row.get("config_name", "?"), "error": row["error"]})
            continue
        rows.append({
            "config_name": row["config_name"],
            "mode": f"compiled, LTC {row['ltc_backend']}" if compiled else f"eager, LTC {row['ltc_backend']}",
            "metric": row["metric"],
            "total_ms_per_iter": row["total_ms_per_iter"],
            "percent_by_category": {c["category"]: round(c["percent"], 1)
                                    for c in sorted(row["categories"], key=lambda c: c["ms"], reverse=True)},
            "top_ops": [op["name"][:60] for op in row["top_ops"][:5]],
        })
    return rows


def _summary_md(report: dict) -> str:
    lines = ["# spyolo GPU check", "", f"- command: `{report['command']}`", f"- elapsed: {report['elapsed_s']:.0f} s",
             "", "| part | status | seconds |", "|---|---|---|"]
    for p in report["parts"]:
        lines.append(f"| {p['name']} | {p['status']} | {p.get('seconds', 0):.0f} |")
    for p in report["parts"]:
        for prof in p.get("profile", []):
            if prof.get("error"):
                lines += ["", f"Profile {prof['config_name']}: failed: {prof['error']}"]
                continue
            shares = ", ".join(f"{c} {pct:.0f}%" for c, pct in prof["percent_by_category"].items() if pct >= 1)
            lines += ["", f"Profile {prof['config_name']} ({prof['mode']}): {prof['total_ms_per_iter']:.1f} ms per "
                      f"iteration ({prof['metric']}); {shares}; top: {', '.join(prof['top_ops'])}"]
    lines += ["", "| target | value | required | passed |", "|---|---|---|---|"]
    for c in report["targets"]:
        lines.append(f"| {c['check']} | {c['value']} | {c['target']} | {'yes' if c['passed'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu for a dry run")
    p.add_argument("--tiny", action="store_true", help="tiny sizes (dry run)")
    p.add_argument("--out", default=os.environ.get("OUT", "gpu_out"), help="output folder (default $OUT or ./gpu_out)")
    p.add_argument("--budget-s", type=float, default=470.0, help="the whole session's time limit in seconds")
    p.add_argument("--parts", default=None, help="comma list of part names to run (default: all, in order)")
    p.add_argument("--part", default=None, help=argparse.SUPPRESS)  # internal: run one part here
    p.add_argument("--json", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.part:
        return run_part_here(args.part, args.device, args.tiny, Path(args.json))

    start = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="spyolo_gpu_check_"))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cache = ROOT / ".devout"
    env.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache / "inductor_cache"))
    env.setdefault("TRITON_CACHE_DIR", str(cache / "triton_cache"))
    parts = build_parts(args.device, args.tiny)
    if args.parts:
        wanted = [n.strip() for n in args.parts.split(",") if n.strip()]
        unknown = sorted(set(wanted) - {pt.name for pt in parts})
        if unknown:
            p.error(f"unknown part(s) {unknown}; valid: {[pt.name for pt in parts]}")
        parts = [pt for pt in parts if pt.name in wanted]
    reserve = 8.0
    report: dict = {"command": "python -m benchmarks.gpu_check " + " ".join(sys.argv[1:] if argv is None else argv),
                    "budget_s": args.budget_s, "parts": [], "targets": [], "elapsed_s": 0.0}
    bench_rows: list[dict] = []
    bench_meta: dict = {}
    succeeded: set[str] = set()  # parts that exited 0 (benchmarks: with no failed row)
    log_path = out / "gpu_check.log"

    def save() -> None:
        report["elapsed_s"] = time.monotonic() - start
        report["targets"] = _targets(bench_rows, parts)
        atomic_write_text(out / "gpu_check.json", json.dumps(report, indent=2, default=str))
        atomic_write_text(out / "gpu_check.md", _summary_md(report))
        bench = {**bench_meta, "results": bench_rows}
        atomic_write_text(out / "bench.json", json.dumps(bench, indent=2, default=str))
        if bench_rows:
            try:
                from benchmarks.report import markdown_report  # imports torch-free helpers only

                atomic_write_text(out / "bench.md", markdown_report(bench) + "\n")
            except Exception as e:  # noqa: BLE001 - the JSON is the record; the table is a convenience
                atomic_write_text(out / "bench.md", f"(markdown table failed: {e})\n")

    with log_path.open("a") as log:
        for part in parts:
            left = args.budget_s - (time.monotonic() - start) - reserve
            entry: dict = {"name": part.name, "argv": part.argv}
            report["parts"].append(entry)
            if left < part.min_s:
                entry["status"] = f"skipped: {left:.0f} s left, needs {part.min_s:.0f} s"
                save()
                continue
            timeout = min(part.limit_s, left)
            json_path = work / f"{part.name}.json"
            argv_run = part_argv(part, succeeded)
            entry["argv"] = list(argv_run)
            if part.profile:
                (out / f"{PROFILE_STEM}_profile.json").unlink(missing_ok=True)  # no stale profile from a past run
                argv_run += ["--out", str(out), "--budget-s", str(max(5.0, timeout - 10))]
            elif part.bench:
                argv_run += ["--out", str(work / part.name), "--stem", part.name,
                             "--budget-s", str(max(5.0, timeout - 15))]
            else:
                argv_run += ["--json", str(json_path)]
            log.write(f"\n===== {part.name} (limit {timeout:.0f} s): python {' '.join(argv_run)}\n")
            log.flush()
            rc, seconds = _run(argv_run, timeout, log, env)
            entry["seconds"] = seconds
            entry["status"] = "ok" if rc == 0 else ("timed out" if rc is None else f"failed (exit {rc})")
            log.write(f"===== {part.name}: {entry['status']} after {seconds:.0f} s\n")
            log.flush()
            if part.bench:
                bench_json = work / part.name / f"{part.name}.json"
                if bench_json.is_file():
                    data = json.loads(bench_json.read_text())
                    for row in data.get("results", []):
                        row["part"] = part.name
                        bench_rows.append(row)
                    bench_meta.setdefault("machine", data.get("machine"))
                    bench_meta.setdefault(
                        "command", "benchmarks/gpu_check.py -> benchmarks/benchmark.py (per part, see gpu_check.json)"
                    )
                    entry["rows"] = len(data.get("results", []))
                    entry["failed_rows"] = sum(1 for r in data.get("results", []) if r.get("error"))
                    if rc == 0 and entry["rows"] and not entry["failed_rows"]:
                        succeeded.add(part.name)
            elif part.profile:
                entry["profile"] = _profile_summary(out / f"{PROFILE_STEM}_profile.json", "--compile" in argv_run)
                if rc == 0 and entry["profile"] and not any(r.get("error") for r in entry["profile"]):
                    succeeded.add(part.name)
            elif json_path.is_file():
                if rc == 0:
                    succeeded.add(part.name)
                part.result = json.loads(json_path.read_text())
                entry["result"] = part.result
                if part.name == "fused":
                    atomic_write_text(out / "fused.json", json.dumps(part.result, indent=2, default=str))
            save()
    save()
    print(_summary_md(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
