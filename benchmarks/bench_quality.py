#!/usr/bin/env python3
"""The learning-quality benchmark: SPYv4-FPTT vs SPYv4-BPTT vs the ANN twin, side by side.

    python -m benchmarks.bench_quality --config configs/bench_synthetic_cpu.yaml   # CPU-sized
    python -m benchmarks.bench_quality --config configs/bench_synthetic.yaml       # full size (GPU)
    python -m benchmarks.bench_quality --config configs/bench_synthetic.yaml data.root=/data/VOCdevkit \\
        data.train_sets=[VOC2007:trainval,VOC2012:trainval] data.test_sets=[VOC2007:test]  # real VOC

Each of the three runs is a plain ``tools/train.py`` (``spyolo train``) call with the same config (data, input
size, epochs, schedule, seed) and one change (``train.method`` or ``model.kind``), followed by
``tools/eval.py --weights .../last.pt --coco --spikes``. The table (markdown + JSON, in
``--out``) gives VOC2007 11-point mAP, area mAP, COCO mAP@[.5:.95], mean firing rate, energy per
image (45 nm figures, docs/spike_stats.md), training wall time and images/s, peak memory, the
machine, and the exact commands. Targets: FPTT >= 0.95 x BPTT and >= 0.85 x ANN (VOC2007 mAP);
the difficulty guard wants the ANN twin between 0.6 and 0.9.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from spyolo.config import load_config
from spyolo.utils.logging import configure_logging

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"
RUNS = {
    "spyv4_fptt": ["model.kind=spyv4", "train.method=fptt"],
    "spyv4_bptt": ["model.kind=spyv4", "train.method=bptt"],
    "ann_twin": ["model.kind=ann"],
}
# Optional ablations of the FPTT recipe (--runs spyv4_fptt,spyv4_fptt_noavg,...).
ABLATIONS = {
    "spyv4_fptt_noavg": ["model.kind=spyv4", "train.method=fptt", "train.reset_to_average=never"],
    "spyv4_fptt_linear": ["model.kind=spyv4", "train.method=fptt", "train.step_weighting=linear"],
    "spyv4_fptt_release_alpha": ["model.kind=spyv4", "train.method=fptt", "train.fptt_alpha_reg=0.1"],
    "spyv4_fptt_alpha01": ["model.kind=spyv4", "train.method=fptt", "train.fptt_alpha=0.1"],
    "spyv4_fptt_alpha05": ["model.kind=spyv4", "train.method=fptt", "train.fptt_alpha=0.5"],
    "spyv4_fptt_update2": ["model.kind=spyv4", "train.method=fptt", "train.update_every=2"],
    # The paper's neuron constants (threshold 1, multi-Gaussian s=0.3, h=0.15, gamma=0.5) instead
    # of the benchmark config's recipe: what the recipe change buys.
    "spyv4_fptt_paper_neuron": ["model.kind=spyv4", "train.method=fptt", "model.threshold=1.0",
                                "model.surrogate_sigma=0.3", "model.surrogate_height=0.15",
                                "model.surrogate_gamma=0.5"],
}
PAPER_NEURON = ["model.threshold=1.0", "model.surrogate_sigma=0.3", "model.surrogate_height=0.15",
                "model.surrogate_gamma=0.5"]
FPTT = ["model.kind=spyv4", "train.method=fptt"]
TRANSFER = ["model.init_from={teacher}", "train.lr=2e-3"]  # from the trained twin: a smaller step
DISTILL = ["train.distill_from={teacher}"]
MEAN = ["model.readout=mean"]
# The training recipe: SPYv4-FPTT started from the trained ANN twin (transfer), pulled towards it
# (distillation), read out over time (mean), at the benchmark's neuron recipe and at the paper's.
# "{teacher}" is the ANN twin's last.pt: this invocation's ann_twin run (which then runs first),
# or --teacher PATH. spyv4_fptt_equal_time: the best recipe with the epochs that make ANN stage +
# SNN stage cost what the scratch run costs (20 ANN epochs ~ 2.7 SNN epochs on the CPU benchmark).
RECIPE = {
    "spyv4_fptt_mean": [*FPTT, *MEAN],
    "spyv4_fptt_transfer": [*FPTT, *TRANSFER],
    "spyv4_fptt_distill": [*FPTT, *DISTILL],
    "spyv4_fptt_transfer_distill": [*FPTT, *TRANSFER, *DISTILL],
    "spyv4_fptt_transfer_distill_mean": [*FPTT, *TRANSFER, *DISTILL, *MEAN],
    "spyv4_fptt_equal_time": [*FPTT, *TRANSFER, *DISTILL, *MEAN, "train.epochs=17"],
    "spyv4_fptt_paper_transfer": [*FPTT, *PAPER_NEURON, *TRANSFER],
    "spyv4_fptt_paper_distill": [*FPTT, *PAPER_NEURON, *DISTILL],
    "spyv4_fptt_paper_transfer_distill": [*FPTT, *PAPER_NEURON, *TRANSFER, *DISTILL],
    "spyv4_fptt_paper_transfer_distill_mean": [*FPTT, *PAPER_NEURON, *TRANSFER, *DISTILL, *MEAN],
}
# Real photographs (configs/real_raccoon.yaml, configs/real_bccd.yaml): the ANN twin from scratch and
# from pretrained weights ("{pretrained}": --pretrained, e.g. the Darknet COCO yolov4-tiny.weights),
# then SPYv4 from scratch and from the fine-tuned twin ("{teacher}": --teacher-run real_ann_pretrained)
# with the paper's recipe (its neuron constants, FPTT alpha 0.5 / 0.1, input dropout, last-step
# read-out) and with spyolo's (transfer + distillation + mean read-out), by FPTT and by BPTT. Every row
# has the config's epochs and schedule; the ANN rows use the twin's fine-tuning step size.
ANN_LR = ["train.lr=1e-3"]
RELEASE_FPTT = ["train.fptt_alpha=0.5", "train.fptt_alpha_reg=0.1", "model.input_dropout=0.1"]
REAL = {
    "real_ann_scratch": ["model.kind=ann", *ANN_LR],
    "real_ann_pretrained": ["model.kind=ann", *ANN_LR, "model.init_from={pretrained}"],
    "real_spyv4_fptt_scratch": [*FPTT, "model.readout=last"],
    "real_spyv4_fptt_paper_recipe": [*FPTT, *PAPER_NEURON, *RELEASE_FPTT, "model.readout=last",
                                     "model.init_from={teacher}"],
    "real_spyv4_fptt_recipe": [*FPTT, "model.init_from={teacher}", *DISTILL, *MEAN],
    "real_spyv4_bptt_recipe": ["model.kind=spyv4", "train.method=bptt", "model.init_from={teacher}", *DISTILL, *MEAN],
}
REAL_RUNS = ",".join(REAL)
ALL_RUNS = {**RUNS, **ABLATIONS, **RECIPE, **REAL}


def needs_teacher(name: str) -> bool:
    """Whether a run starts from, or distils from, the trained ANN twin."""
    return any("{teacher}" in o for o in ALL_RUNS[name])


def needs_pretrained(name: str) -> bool:
    """Whether a run starts from ``--pretrained`` weights."""
    return any("{pretrained}" in o for o in ALL_RUNS[name])


def is_ann(name: str) -> bool:
    """Whether a run trains the ANN twin (no timesteps, no spike statistics)."""
    return "model.kind=ann" in ALL_RUNS[name]


def _inherited_threads() -> int:
    """Threads a run gets when ``--jobs 1`` sets none: ``OMP_NUM_THREADS`` if set, else the CPU count."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0]))
    except ValueError:
        return os.cpu_count() or 1


def _start(cmd: list[str], log: Path, threads: int | None) -> tuple[subprocess.Popen, float]:
    print("$ " + shown(cmd), flush=True)
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    f = log.open("w")
    proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    f.close()  # the child holds its own descriptor
    return proc, time.perf_counter()


def shown(cmd: list[str]) -> str:
    """A command as a user would type it from the repository root (``python tools/train.py ...``)."""
    def one(arg: str) -> str:
        if arg == sys.executable:
            return "python"
        path = Path(arg)
        if path.is_absolute() and path.is_relative_to(ROOT):
            return str(path.relative_to(ROOT))
        return arg

    return " ".join(shlex.quote(one(c)) for c in cmd)


def _finish(proc: subprocess.Popen, t0: float, log: Path) -> float:
    rc = proc.wait()
    dt = time.perf_counter() - t0
    if rc != 0:
        tail = log.read_text()[-3000:]
        sys.exit(f"bench_quality: command failed (exit {rc}), log {log}:\n{tail}")
    return dt


def _machine_name(info: dict) -> str:
    gpus = info.get("gpus") or []
    return gpus[0]["name"] if gpus else f"{info['cpu_model']} ({info['cpu_cores']} cores)"


def machine() -> dict:
    """The machine the benchmark ran on (:func:`benchmarks.machine.machine_info`)."""
    from benchmarks.machine import machine_info

    return machine_info()


def summarise(name: str, run_dir: Path, eval_json: Path, spikes_json: Path | None, train_s: float) -> dict:
    with (run_dir / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    res = json.loads(eval_json.read_text())
    coco = res.get("coco") or {}
    out = {
        "run": name,
        "map_voc07": res["map_voc07"],
        "map_area": res["map_area"],
        "map_coco": coco.get("map_coco", res.get("map_coco")),
        "train_wall_s": train_s,
        "train_images_per_s": sum(float(r["images_per_s"]) for r in rows) / len(rows),
        "peak_mem_mib": max(float(r["peak_mem_mib"]) for r in rows),
        "epochs": len(rows),
        "final_loss": float(rows[-1]["loss"]),
    }
    distill = float(rows[-1].get("distill") or "nan")
    if distill == distill:  # not NaN: the run distilled
        out["final_distill"] = distill
    if spikes_json is not None and spikes_json.is_file():
        sp = json.loads(spikes_json.read_text())
        out["firing_rate"] = sp["totals"]["mean_firing_rate"]
        out["energy_uj"] = 1e6 * sp["totals"]["energy_j"]
        out["ann_twin_energy_uj"] = 1e6 * sp["ann_twin"]["energy_j"]
    return out


def fmt(v, pct=False, digits=2) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.{digits}f}" if pct else f"{v:.{digits}f}"


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        f"Benchmark `{meta['config']}` on {_machine_name(meta['machine'])} "
        f"(torch {meta['machine']['torch']}), {meta['date']}",
        "",
        "| run | VOC2007 mAP (11-pt) | area mAP | COCO mAP@[.5:.95] | final loss (+ distill) | firing rate | energy/image (µJ) | train wall (s) | train img/s | peak mem (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        energy = r.get("energy_uj")
        distill = f" (+{r['final_distill']:.2f})" if "final_distill" in r else ""
        if is_ann(r["run"]):
            energy = next((x.get("ann_twin_energy_uj") for x in rows if x.get("ann_twin_energy_uj")), None)
        lines.append(
            f"| {r['run']} | {fmt(r['map_voc07'], True)} | {fmt(r['map_area'], True)} | {fmt(r['map_coco'], True)} | "
            f"{r['final_loss']:.2f}{distill} | "
            f"{fmt(r.get('firing_rate'), digits=4)} | {fmt(energy, digits=1)} | {r['train_wall_s']:.0f} | "
            f"{r['train_images_per_s']:.1f} | {r['peak_mem_mib']:.0f} |"
        )
    t = meta["targets"]
    lines += [
        "",
        f"FPTT / BPTT (VOC2007 mAP): {fmt(t['fptt_over_bptt'])} (target >= 0.95); "
        f"FPTT / ANN: {fmt(t['fptt_over_ann'])} (target >= 0.85); "
        f"best FPTT row / ANN ({t.get('reference_run', 'ann_twin')}): {fmt(t.get('best_fptt_over_ann'))} "
        f"({t.get('best_fptt_run') or '-'}); "
        + (f"recipe FPTT / BPTT: {fmt(t['recipe_fptt_over_bptt'])}; " if t.get("recipe_fptt_over_bptt") else "")
        + f"ANN twin in [0.6, 0.9]: {t['ann_in_band']}.",
        "",
        "Peak memory: CUDA max allocated (GPU) or the training process's peak RSS (CPU). Energy: "
        "0.9 pJ per accumulate, 4.6 pJ per multiply-accumulate (45 nm; docs/spike_stats.md); the ANN "
        "twin's figure is its multiply-accumulates at the same input size.",
        "",
        *([f"Runs trained {meta['jobs']} at a time with {meta['threads_per_run']} thread(s) each: wall times "
           "and images/s are measured under that sharing."] if meta.get("jobs", 1) > 1
          else [f"Runs trained one at a time with {meta.get('threads_per_run')} thread(s)."]),
        "",
        "Training curves: `loss.png` beside this table.",
        "",
        "Commands:",
        "",
        *[f"    {c}" for c in meta["commands"]],
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/bench_synthetic_cpu.yaml")
    p.add_argument("--out", default=None, help="output folder (default runs/<train.name>_quality)")
    p.add_argument("--runs", default=",".join(RUNS),
                   help=f"comma list from {','.join(ALL_RUNS)}; 'real': the real-photo rows ({REAL_RUNS})")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs trained at the same time (default 1). With N > 1 each run gets cpu_count / N "
                        "threads; their wall times and images/s are then measured under that sharing (the "
                        "table says so)")
    p.add_argument("--teacher", default=None,
                   help="a trained ANN-twin checkpoint for the transfer/distillation runs (default: the last.pt of "
                        "this invocation's --teacher-run, trained first)")
    p.add_argument("--teacher-run", default="ann_twin",
                   help="the run whose last.pt is the teacher when --teacher is not given (default ann_twin; the "
                        "real-photo rows use real_ann_pretrained)")
    p.add_argument("--pretrained", default=None,
                   help="pretrained weights for the runs that start from them (real_ann_pretrained), e.g. the "
                        "Darknet yolov4-tiny.weights")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides applied to every run")
    args = p.parse_args()
    configure_logging(0)
    cfg = load_config(args.config, args.overrides)  # validates the overrides once, up front
    names = list(REAL) if args.runs == "real" else args.runs.split(",")
    for name in names:
        if name not in ALL_RUNS:
            sys.exit(f"bench_quality: unknown run '{name}'; valid: {', '.join(ALL_RUNS)}")
    if args.jobs < 1:
        sys.exit("bench_quality: --jobs must be >= 1")
    teacher_run = args.teacher_run
    if any(needs_teacher(n) for n in names) and not args.teacher and teacher_run not in names:
        sys.exit(f"bench_quality: the transfer/distillation runs need the ANN twin: add {teacher_run} to --runs "
                 "or pass --teacher PATH")
    if not args.teacher and teacher_run in names and not is_ann(teacher_run):
        sys.exit(f"bench_quality: --teacher-run {teacher_run} does not train the ANN twin")
    if args.teacher and not Path(args.teacher).is_file():
        sys.exit(f"bench_quality: {args.teacher}: teacher checkpoint not found")
    if any(needs_pretrained(n) for n in names) and not (args.pretrained and Path(args.pretrained).is_file()):
        sys.exit(f"bench_quality: {', '.join(n for n in names if needs_pretrained(n))} need --pretrained WEIGHTS "
                 f"(an existing file; got {args.pretrained!r})")
    out = Path(args.out or f"runs/{cfg.train.name}_quality")
    from spyolo.cli.train import run_files

    earlier = [n for n in names if (out / n).is_dir() and run_files(out / n)]
    if earlier:
        sys.exit(f"bench_quality: {out} already holds runs {', '.join(earlier)}; choose another --out "
                 f"(earlier runs are never overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    from spyolo.data.build import ensure_synthetic

    ensure_synthetic(cfg.data)  # once, here: concurrent runs must not generate the data side by side
    py = sys.executable
    threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None
    commands: dict[str, list[str]] = {}
    results: dict[str, dict] = {}
    teacher = args.teacher or str(out / teacher_run / "weights" / "last.pt")
    # the teacher run first when others wait for it
    pending = sorted(names, key=lambda n: n != teacher_run) if not args.teacher else list(names)
    running: dict[str, tuple[subprocess.Popen, float]] = {}

    def ready(name: str) -> bool:
        return args.teacher is not None or not needs_teacher(name) or teacher_run in results

    def launch(name: str) -> None:
        run_dir = out / name
        run_overrides = [o.replace("{teacher}", teacher).replace("{pretrained}", str(args.pretrained))
                         for o in ALL_RUNS[name]]
        train_cmd = [py, str(TOOLS / "train.py"), "--config", args.config, "--run-dir", str(run_dir), "--exist-ok",
                     "--no-progress", *args.overrides, *run_overrides, "train.eval_every=0"]
        commands[name] = [shown(train_cmd)]
        running[name] = _start(train_cmd, out / f"{name}_train.log", threads)

    def evaluate(name: str, train_s: float) -> None:
        run_dir = out / name
        eval_json = run_dir / "eval" / "metrics.json"
        eval_cmd = [py, str(TOOLS / "eval.py"), "--weights", str(run_dir / "weights" / "last.pt"), "--coco",
                    "--json", str(eval_json), "--out", str(run_dir / "eval"), "--no-progress", *args.overrides]
        spiking = not is_ann(name)
        if spiking:
            eval_cmd.append("--spikes")
        log = out / f"{name}_eval.log"
        _finish(*_start(eval_cmd, log, threads), log)
        commands[name].append(shown(eval_cmd))
        spikes = run_dir / "eval" / "spike_stats.json" if spiking else None
        results[name] = summarise(name, run_dir, eval_json, spikes, train_s)
        print(json.dumps(results[name]), flush=True)

    while pending or running:
        while len(running) < args.jobs and any(ready(n) for n in pending):
            name = next(n for n in pending if ready(n))
            pending.remove(name)
            launch(name)
        done = None
        while done is None:
            done = next((n for n, (proc, _) in running.items() if proc.poll() is not None), None)
            if done is None:
                time.sleep(1.0)
        proc, t0 = running.pop(done)
        evaluate(done, _finish(proc, t0, out / f"{done}_train.log"))
    rows = [results[n] for n in names]
    by = {r["run"]: r for r in rows}

    def ratio(a, b):
        return by[a]["map_voc07"] / by[b]["map_voc07"] if a in by and b in by and by[b]["map_voc07"] > 0 else None

    reference = teacher_run if teacher_run in by else "ann_twin"
    ann = by.get(reference, {}).get("map_voc07")
    fptt_rows = [r for r in rows if "train.method=fptt" in ALL_RUNS[r["run"]]]
    best = max(fptt_rows, key=lambda r: r["map_voc07"])["run"] if fptt_rows else None
    meta = {
        "config": args.config, "overrides": args.overrides, "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commands": [shown([py, "-m", "benchmarks.bench_quality", *sys.argv[1:]])] + [c for n in names for c in commands[n]],
        "jobs": args.jobs, "threads_per_run": threads or _inherited_threads(),
        "seeds": {"data": cfg.data.synthetic_seed, "train": cfg.train.seed},
        "targets": {"fptt_over_bptt": ratio("spyv4_fptt", "spyv4_bptt"), "fptt_over_ann": ratio("spyv4_fptt", "ann_twin"),
                    "best_fptt_run": best, "best_fptt_over_ann": ratio(best, reference) if best else None,
                    "reference_run": reference,
                    "recipe_fptt_over_bptt": ratio("real_spyv4_fptt_recipe", "real_spyv4_bptt_recipe"),
                    "ann_in_band": (None if ann is None else 0.6 <= ann <= 0.9)},
    }
    (out / "table.json").write_text(json.dumps({"rows": rows, **meta}, indent=2))
    from spyolo.eval.plots import plot_training_curves

    plot_training_curves({n: out / n for n in names}, out / "loss.png", title=f"{args.config}: training loss per epoch")
    md = markdown(rows, meta)
    (out / "table.md").write_text(md)
    print("\n" + md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
