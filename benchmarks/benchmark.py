#!/usr/bin/env python3
"""Measure spyolo's training (FPTT, BPTT, ANN twin) and inference speed and memory.

    # a grid of configurations (GPU: the speed and memory targets, docs/performance.md)
    python -m benchmarks.benchmark --methods fptt,bptt,ann,infer --timesteps 2,8,16 --batch 64 \\
        --img-size 416 --width 1.0 --device cuda --compile --amp bf16 --out runs/bench_gpu

    # CPU: one FPTT timestep vs one ANN-twin training step, side by side
    python -m benchmarks.benchmark --cpu-ratio --threads 1 --out runs/bench_cpu

    # the training data loader's images/s (synthetic dataset, 416 px)
    python -m benchmarks.benchmark --loader --workers 0,2,4 --batch 64 --img-size 416

    # event samples, long sequences: peak memory and speed of FPTT vs BPTT at T = 8, 32, 128
    python -m benchmarks.benchmark --input events --methods fptt,bptt --timesteps 8,32,128 --batch 4 \
        --img-size 128 --width 0.25 --threads 1 --repeats 1 --device cpu --out runs/bench_events

    # where the time goes: torch.profiler over 2 iterations of FPTT T=8 (+ a Chrome trace)
    python -m benchmarks.benchmark --profile --methods fptt --timesteps 8 --device cuda --trace --out runs/profile

Every configuration runs the real YOLO loss and, for FPTT, the real FPTT update on random
images (3 random boxes each). Results go to ``<out>/<stem>.json`` (every number) and
``<out>/<stem>.md`` (tables with the machine, the torch version and this command); both are
rewritten after every configuration, so an interrupted run keeps what it measured.

Defaults depend on the device: on CUDA batch 64, 416 px, width 1.0, T = 2,8,16, compile on,
bf16 autocast and channels_last; on CPU batch 8, 160 px, width 0.5, T = 2,4, compile off,
float32. On CPU each configuration runs in a fresh subprocess (the peak RSS over its timed
iterations is the configuration's alone); on CUDA they run in one process and ``max_memory_allocated`` is reset per
measurement.

``--profile`` replaces the timing of the grid by a profile of each configuration (same flags,
same defaults, all in this process; see ``benchmarks/profile.py``): ``<out>/<stem>_profile.json``
and ``<out>/<stem>_profile.md`` list the top operators by self time (CUDA: the device time of
the kernels each operator launched; CPU: self CPU time) and the time per category
(convolution, batch norm, elementwise/LTC update, optimizer/FPTT update, loss, memory copies,
other); ``--trace`` adds one Chrome trace per configuration, ``<out>/<stem>_<config>.trace.json``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from benchmarks.machine import machine_info
from benchmarks.probe import COMPILE_MODES, METHODS, ProbeConfig
from benchmarks.report import write_report
from benchmarks.suite import expand_grid, run_configs
from spyolo.utils.runtime import resolve_device

CPU_DEFAULTS = {"batch": "8", "img_size": "160", "width": 0.5, "timesteps": "2,4"}
CUDA_DEFAULTS = {"batch": "64", "img_size": "416", "width": 1.0, "timesteps": "2,8,16"}


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one integer, got {text!r}")
    return values


def _methods(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in METHODS]
    if bad or not values:
        raise argparse.ArgumentTypeError(f"unknown method(s) {bad or text!r}; valid: {','.join(METHODS)}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("grid")
    g.add_argument("--methods", type=_methods, default=None, help="comma list of fptt,bptt,ann,infer (default: all)")
    g.add_argument("--timesteps", default=None, help="comma list of T (CPU default 2,4; CUDA 2,8,16)")
    g.add_argument("--batch", default=None, help="comma list of batch sizes (CPU default 8; CUDA 64)")
    g.add_argument("--img-size", default=None, help="comma list of input sizes (CPU default 160; CUDA 416)")
    g.add_argument("--width", type=float, default=None, help="channel multiplier (CPU default 0.5; CUDA 1.0)")
    g.add_argument("--num-classes", type=int, default=20)
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the per-timestep forward (default: on for CUDA, off for CPU)")
    g.add_argument("--compile-mode", default="default", choices=COMPILE_MODES)
    g.add_argument("--compile-loss", action=argparse.BooleanOptionalAction, default=False,
                   help="also torch.compile the YOLO loss")
    g.add_argument("--amp", default="auto", choices=("auto", "bf16", "off"), help="auto: bf16 on CUDA, off on CPU")
    g.add_argument("--channels-last", default="auto", choices=("auto", "on", "off"))
    g.add_argument("--ltc-backend", default="auto", choices=("auto", "reference", "fused", "fused-eager"),
                   help="LTC elementwise update (auto: fused on CUDA, reference on CPU)")
    g.add_argument("--repeats", type=int, default=3, help="timed iterations per configuration (median reported)")
    g.add_argument("--warmup", type=int, default=None, help="untimed iterations first (default 2 with compile, else 1)")
    g.add_argument("--flops", action=argparse.BooleanOptionalAction, default=True,
                   help="count forward FLOPs per timestep and report TFLOP/s")
    g.add_argument("--sync-check", action=argparse.BooleanOptionalAction, default=None,
                   help="check the time loop for host syncs after timing (CUDA; default on there)")
    g.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    g.add_argument("--input", choices=("image", "events"), default="image",
                   help="events: event samples of simulated recordings, T bins of --event-bin-us, bin t at timestep t")
    g.add_argument("--event-bin-us", type=int, default=5000, help="--input events: duration of one bin (us)")
    g.add_argument("--timeout", type=float, default=1800.0, help="per-configuration limit in s (CPU subprocesses)")
    g.add_argument("--budget-s", type=float, default=None, help="skip configurations once this many s have passed")
    r = p.add_argument_group("CPU ratio mode")
    r.add_argument("--cpu-ratio", action="store_true",
                   help="measure an FPTT timestep vs an ANN-twin step side by side on CPU (batch 8, 160 px, "
                        "width 0.5, T=4 unless --batch/--img-size/--width/--timesteps say otherwise)")
    r.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the ratio (median reported)")
    r.add_argument("--ratio-target", type=float, default=3.0)
    ld = p.add_argument_group("loader mode")
    ld.add_argument("--loader", action="store_true", help="measure the training DataLoader's images/s")
    ld.add_argument("--workers", type=_int_list, default=[2], help="comma list of worker counts")
    ld.add_argument("--loader-batches", type=int, default=10, help="batches timed per worker count")
    ld.add_argument("--config", default="configs/spyv4_synthetic.yaml", help="config whose data section is used")
    ld.add_argument("--data-override", action="append", default=[], metavar="KEY=VALUE",
                    help="extra config override for the loader, e.g. data.root=/data/VOCdevkit (repeatable)")
    pr = p.add_argument_group("profile mode")
    pr.add_argument("--profile", action="store_true",
                    help="profile each configuration of the grid (--methods, --timesteps, --batch, --img-size, ...) "
                         "with torch.profiler instead of timing it; writes <out>/<stem>_profile.json and "
                         "<stem>_profile.md (top operators by self device time on CUDA / self CPU time on CPU, "
                         "and the time per category)")
    pr.add_argument("--profile-iters", type=int, default=2,
                    help="profiled iterations per configuration, after the --warmup ones (default 2)")
    pr.add_argument("--profile-rows", type=int, default=25, help="rows of the top-operator tables (default 25)")
    pr.add_argument("--trace", action="store_true",
                    help="with --profile: also export a Chrome trace per configuration, "
                         "<out>/<stem>_<method>_T<T>_b<batch>_<size>px.trace.json "
                         "(open in Perfetto or chrome://tracing)")
    o = p.add_argument_group("output")
    o.add_argument("--out", default="runs/benchmark", help="output folder")
    o.add_argument("--stem", default="benchmark",
                   help="file name stem of the JSON and markdown reports (profile mode: <stem>_profile.*)")
    return p


def _grid(args: argparse.Namespace, device: torch.device) -> tuple[ProbeConfig, list[ProbeConfig]]:
    """The base configuration and the grid of configurations the flags select."""
    defaults = CUDA_DEFAULTS if device.type == "cuda" else CPU_DEFAULTS
    compile_on = (device.type == "cuda") if args.compile is None else args.compile
    base = ProbeConfig(
        width=args.width if args.width is not None else defaults["width"],
        num_classes=args.num_classes,
        warmup=(2 if compile_on else 1) if args.warmup is None else args.warmup,
        iters=args.repeats,
        device=str(device),
        amp=args.amp,
        channels_last=args.channels_last,
        compile=compile_on,
        compile_mode=args.compile_mode,
        compile_loss=args.compile_loss,
        ltc_backend=args.ltc_backend,
        flops=args.flops,
        sync_check=(device.type == "cuda") if args.sync_check is None else args.sync_check,
        threads=args.threads,
        input=args.input,
        event_bin_us=args.event_bin_us,
    )
    configs = expand_grid(
        base,
        args.methods or list(METHODS),
        _int_list(args.timesteps or defaults["timesteps"]),
        _int_list(args.batch or defaults["batch"]),
        _int_list(args.img_size or defaults["img_size"]),
    )
    return base, configs


def _run_profiles(args: argparse.Namespace, device: torch.device, command: str, deadline: float | None) -> Path:
    """``--profile``: profile every configuration of the grid; return the markdown report's path."""
    from benchmarks.profile import config_name, profile_configs, write_profile_report

    base, configs = _grid(args, device)
    # FLOP counting and the sync check belong to the timing mode; the profile needs neither.
    configs = [replace(cfg, flops=False, sync_check=False) for cfg in configs]
    out = Path(args.out)
    report: dict = {
        "command": command,
        "machine": machine_info(),
        "profile_iters": args.profile_iters,
        "grid_base": asdict(replace(base, flops=False, sync_check=False, iters=args.profile_iters)),
        "profiles": [],
    }
    paths = write_profile_report(out, report, args.stem)

    def trace_path(cfg: ProbeConfig) -> Path | None:
        return out / f"{args.stem}_{config_name(cfg)}.trace.json" if args.trace else None

    def on_row(row: dict) -> None:
        report["profiles"].append(row)
        write_profile_report(out, report, args.stem)
        head = f"profile {row['config_name']}"
        if row.get("error"):
            print(f"{head}: {row['error']}", flush=True)
            return
        shares = sorted(row["categories"], key=lambda c: c["ms"], reverse=True)
        print(
            f"{head}: {row['total_ms_per_iter']:.1f} ms per iteration ({row['metric']}); "
            + ", ".join(f"{c['category']} {c['percent']:.0f}%" for c in shares if c["percent"] >= 1),
            flush=True,
        )

    profile_configs(configs, iters=args.profile_iters, row_limit=args.profile_rows, trace_path=trace_path,
                    on_row=on_row, deadline=deadline)
    print(f"wrote {paths[0]} and {paths[1]}")
    return paths[1]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.profile_iters < 1 or args.profile_rows < 1:
        parser.error("--profile-iters and --profile-rows must be at least 1")
    if args.trace and not args.profile:
        parser.error("--trace needs --profile")
    if args.threads > 0:
        torch.set_num_threads(args.threads)  # here too, so that the report's machine line says so
    start = time.monotonic()
    deadline = None if args.budget_s is None else start + args.budget_s
    device = resolve_device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"benchmark: --device {args.device} but CUDA is not available", file=sys.stderr)
        return 2
    # --profile replaces the timed grid; the CPU ratio and the loader still go to the main report.
    run_grid = not args.profile and (args.methods is not None or not (args.cpu_ratio or args.loader))
    main_report = run_grid or args.cpu_ratio or args.loader
    command = "python -m benchmarks.benchmark " + " ".join(shlex.quote(a) for a in argv)
    report: dict = {
        "command": command,
        "machine": machine_info(),
        "results": [],
    }
    out = Path(args.out)

    def save() -> None:
        if main_report:
            json_path, md_path = write_report(out, report, args.stem)
            report["files"] = [str(json_path), str(md_path)]

    save()
    if args.cpu_ratio:
        from benchmarks.ratio import RatioConfig, measure_cpu_ratio

        ratio_cfg = RatioConfig(
            batch=_int_list(args.batch)[0] if args.batch else 8,
            img_size=_int_list(args.img_size)[0] if args.img_size else 160,
            width=args.width if args.width is not None else 0.5,
            timesteps=_int_list(args.timesteps)[0] if args.timesteps else 4,
            rounds=args.rounds,
            warmup=1 if args.warmup is None else args.warmup,
            threads=args.threads,
            ltc_backend="reference" if args.ltc_backend == "auto" else args.ltc_backend,
            target=args.ratio_target,
        )
        ratio = measure_cpu_ratio(ratio_cfg)
        report["cpu_ratio"] = ratio
        save()
        verdict = "met" if ratio["ratio"] <= ratio["target"] else "NOT met"
        print(
            f"CPU ratio (batch {ratio['batch']}, {ratio['img_size']} px, width {ratio['width']}, "
            f"T={ratio['timesteps']}): "
            f"FPTT timestep {ratio['fptt_step_s']:.3f} s, ANN step {ratio['ann_step_s']:.3f} s, "
            f"ratio {ratio['ratio']:.2f} (target <= {ratio['target']}: {verdict}); "
            f"FLOP ratio {ratio['flops_ratio']:.2f}"
        )
    if args.loader:
        from benchmarks.loader import LoaderConfig, measure_loader

        loader_cfg = LoaderConfig(
            config=args.config,
            img_size=_int_list(args.img_size)[0] if args.img_size else 416,
            workers=args.workers,
            batch=_int_list(args.batch)[0] if args.batch else 64,
            batches=args.loader_batches,
            overrides=args.data_override,
        )
        report["loader"] = measure_loader(loader_cfg)
        save()
        for row in report["loader"]:
            print(f"loader: workers {row['workers']}, batch {row['batch']}, {row['img_size']} px: "
                  f"{row['images_per_s']:.1f} images/s")
    if run_grid:
        base, configs = _grid(args, device)
        report["grid_base"] = asdict(base)

        def on_row(row: dict) -> None:
            report["results"].append(row)
            save()
            if row.get("error"):
                print(f"{row['method']} T={row['timesteps']} batch {row['batch']} {row['img_size']} px: {row['error']}")
            else:
                print(
                    f"{row['method']} T={row['timesteps']} batch {row['batch']} {row['img_size']} px: "
                    f"{row['images_per_s']:.2f} images/s, {row['ms_per_image_timestep']:.2f} ms/image-step, "
                    f"peak {row['peak_gib']:.2f} GiB ({row['peak_kind']})"
                    + (f", {row['tflops_achieved']:.3g} TFLOP/s" if row.get("tflops_achieved") else "")
                    + ("" if row.get("sync_free") is None else f", sync-free: {row['sync_free']}"),
                    flush=True,
                )

        run_configs(
            configs, fresh_process=device.type == "cpu", on_row=on_row, timeout_s=args.timeout, deadline=deadline
        )
    if args.profile:
        _run_profiles(args, device, command, deadline)
    save()
    if main_report:
        print(f"wrote {report['files'][0]} and {report['files'][1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
