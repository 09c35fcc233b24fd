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

The runs are defined in ``configs/quality_runs/``: one YAML file per preset group (``baseline``:
the three runs above, the default; ``ablations``; ``recipe``; ``real``: the real-photo rows), each a
mapping of run name to the config values it changes, written as in a config file. ``--runs`` takes
run names and preset names, e.g. ``--runs real --teacher-run real_ann_pretrained --pretrained W``
or ``--runs ann_twin,spyv4_fptt_transfer_distill_mean``.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import yaml

from benchmarks.machine import machine_info
from benchmarks.runner import Job, start
from spyolo.config import Config, ConfigError, apply_overrides, load_config, parse_yaml
from spyolo.errors import SpyoloError
from spyolo.utils.io import atomic_write_text
from spyolo.utils.logging import configure_logging

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"
RUNS_DIR = ROOT / "configs" / "quality_runs"
PRESETS = ("baseline", "ablations", "recipe", "real")
"""The preset groups, each ``configs/quality_runs/<preset>.yaml``: a mapping of run name -> config overlay.
``--runs <preset>`` selects a group's runs; ``baseline`` (FPTT, BPTT, ANN twin) is the default."""
PLACEHOLDERS = ("{teacher}", "{pretrained}")


class RunsError(SpyoloError, ValueError):
    """A run file or a ``--runs`` selection that cannot be used."""


def _value_text(value: Any) -> str:
    """A config value as the text of a ``section.key=value`` override that parses back to it."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, float):
        text = repr(value)
        if "e" in text and "." not in text:  # YAML 1.1 reads 1e-05 as a string
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"
    elif isinstance(value, (int, str)):
        text = str(value)
    else:
        text = json.dumps(value)  # lists and mappings: YAML flow style
    return text if parse_yaml(text) == value else json.dumps(value)


def overlay_overrides(overlay: dict, teacher: str = "{teacher}", pretrained: str = "{pretrained}") -> list[str]:
    """A run's overlay (``{section: {key: value}}``) as ``section.key=value`` overrides, in file order,
    with ``{teacher}`` and ``{pretrained}`` in string values replaced by the given paths."""
    out = []
    for section, values in overlay.items():
        for key, value in values.items():
            if isinstance(value, str):
                value = value.replace("{teacher}", teacher).replace("{pretrained}", pretrained)
            out.append(f"{section}.{key}={_value_text(value)}")
    return out


def load_runs(folder: Path = RUNS_DIR) -> dict[str, dict[str, dict]]:
    """Every preset's runs: ``{preset: {run: overlay}}``, read from ``<folder>/<preset>.yaml``.

    Each overlay is checked as overrides of the default config (sections, keys, types, choices);
    a run name may appear once across the files and never as a preset's name.

    Raises:
        RunsError: naming the file and the run or key that is wrong.
    """
    presets: dict[str, dict[str, dict]] = {}
    seen: dict[str, Path] = {}
    for preset in PRESETS:
        path = folder / f"{preset}.yaml"
        try:
            data = parse_yaml(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise RunsError(f"{path}: cannot read the run file ({e})") from None
        if not isinstance(data, dict) or not data:
            raise RunsError(f"{path}: expected a mapping of run name -> config overlay")
        runs: dict[str, dict] = {}
        for name, overlay in data.items():
            name = str(name)
            if name in seen or name in PRESETS:
                other = seen.get(name)
                raise RunsError(
                    f"{path}: run '{name}' is also " + (f"defined in {other}" if other else "a preset name")
                )
            if not isinstance(overlay, dict) or not all(isinstance(v, dict) for v in overlay.values()):
                raise RunsError(f"{path}: run '{name}' must be a mapping of section -> {{key: value}}")
            try:
                apply_overrides(Config(), overlay_overrides(overlay, "teacher.pt", "pretrained.pt"))
            except ConfigError as e:
                raise RunsError(f"{path}: run '{name}': {e}") from None
            runs[name] = overlay
            seen[name] = path
        presets[preset] = runs
    return presets


def all_runs(presets: dict[str, dict[str, dict]]) -> dict[str, dict]:
    """Every run's overlay by name, in preset order."""
    return {name: overlay for runs in presets.values() for name, overlay in runs.items()}


def select_runs(spec: str, presets: dict[str, dict[str, dict]]) -> list[str]:
    """The run names of a ``--runs`` value: a comma list of run names and preset names (expanded in order)."""
    known = all_runs(presets)
    names: list[str] = []
    for item in (part.strip() for part in spec.split(",")):
        chosen = list(presets[item]) if item in presets else [item]
        for name in chosen:
            if name not in known:
                raise RunsError(f"unknown run '{name}'; valid: {', '.join(known)} (or a preset: {', '.join(PRESETS)})")
            if name not in names:
                names.append(name)
    return names


def _uses(overlay: dict, placeholder: str) -> bool:
    return any(isinstance(v, str) and placeholder in v for values in overlay.values() for v in values.values())


def needs_teacher(overlay: dict) -> bool:
    """Whether a run starts from, or distils from, the trained ANN twin."""
    return _uses(overlay, "{teacher}")


def needs_pretrained(overlay: dict) -> bool:
    """Whether a run starts from ``--pretrained`` weights."""
    return _uses(overlay, "{pretrained}")


def is_ann(overlay: dict) -> bool:
    """Whether a run trains the ANN twin (no timesteps, no spike statistics)."""
    return overlay.get("model", {}).get("kind") == "ann"


def is_fptt(overlay: dict) -> bool:
    """Whether a run trains SPYv4 by FPTT (named in its overlay)."""
    return overlay.get("train", {}).get("method") == "fptt"


def _inherited_threads() -> int:
    """Threads a run gets when ``--jobs 1`` sets none: ``OMP_NUM_THREADS`` if set, else the CPU count."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0]))
    except ValueError:
        return os.cpu_count() or 1


def _start(cmd: list[str], log: Path, threads: int | None) -> Job:
    print("$ " + shown(cmd), flush=True)
    return start(cmd, log=log, threads=threads)


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


def _finish(job: Job, log: Path) -> float:
    done = job.wait()
    if not done.ok:
        tail = log.read_text(errors="replace")[-3000:]
        sys.exit(f"bench_quality: command failed (exit {done.returncode}), log {log}:\n{tail}")
    return done.seconds


def _fail(message: str) -> NoReturn:
    print(f"bench_quality: {message}", file=sys.stderr)
    sys.exit(2)


def _machine_name(info: dict) -> str:
    gpus = info.get("gpus") or []
    return gpus[0]["name"] if gpus else f"{info['cpu_model']} ({info['cpu_cores']} cores)"


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
    for part in ("box", "obj", "cls"):
        value = float(rows[-1].get(part) or "nan")
        if value == value:
            out[f"final_{part}"] = value
    train_map = float(rows[-1].get("train_map_voc07") or "nan")
    if train_map == train_map:
        out["train_map_voc07"] = train_map
    distill = float(rows[-1].get("distill") or "nan")
    if distill == distill:  # not NaN: the run distilled
        out["final_distill"] = distill
    if spikes_json is not None and spikes_json.is_file():
        sp = json.loads(spikes_json.read_text())
        out["firing_rate"] = sp["totals"]["mean_firing_rate"]
        out["energy_uj"] = 1e6 * sp["totals"]["energy_j"]
        out["ann_twin_energy_uj"] = 1e6 * sp["ann_twin"]["energy_j"]
    return out


def _mean_row(per_seed: list[dict]) -> dict:
    """One row from a run's seeds: the seed's own row for one seed, else every number averaged."""
    if len(per_seed) == 1:
        return per_seed[0]
    row = {"run": per_seed[0]["run"], "seeds": [r.get("seed") for r in per_seed]}
    for key in per_seed[0]:
        values = [r[key] for r in per_seed if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]
        if key not in ("run", "seed") and len(values) == len(per_seed):
            row[key] = sum(values) / len(values)
    return row


def fmt(v, pct=False, digits=2) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.{digits}f}" if pct else f"{v:.{digits}f}"


def markdown(rows: list[dict], meta: dict, ann_runs: set[str] = frozenset()) -> str:
    """The table of ``rows``; ``ann_runs`` are the ANN-twin rows (their energy is the twin's figure)."""
    lines = [
        f"Benchmark `{meta['config']}` on {_machine_name(meta['machine'])} "
        f"(torch {meta['machine']['torch']}), {meta['date']}",
        "",
        "| run | VOC2007 mAP (11-pt) | training subset | area mAP | COCO mAP@[.5:.95] | final loss (+ distill) "
        "| box / obj / cls | firing rate | energy/image (µJ) | train wall (s) | train img/s | peak mem (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        energy = r.get("energy_uj")
        distill = f" (+{r['final_distill']:.2f})" if "final_distill" in r else ""
        if r["run"] in ann_runs:
            energy = next((x.get("ann_twin_energy_uj") for x in rows if x.get("ann_twin_energy_uj")), None)
        lines.append(
            f"| {r['run']} | {fmt(r['map_voc07'], True)} | {fmt(r.get('train_map_voc07'), True)} | "
            f"{fmt(r['map_area'], True)} | {fmt(r['map_coco'], True)} | "
            f"{r['final_loss']:.2f}{distill} | "
            f"{' / '.join(fmt(r.get(f'final_{k}')) for k in ('box', 'obj', 'cls'))} | "
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
        "0.9 pJ per accumulate, 4.6 pJ per multiply-accumulate, 0.9 / 3.7 pJ per elementwise addition / "
        "multiplication (45 nm; docs/spike_stats.md); the ANN twin is counted the same way at the same input size.",
        "",
        *([f"Runs trained {meta['jobs']} at a time with {meta['threads_per_run']} thread(s) each: wall times "
           "and images/s are measured under that sharing."] if meta.get("jobs", 1) > 1
          else [f"Runs trained one at a time with {meta.get('threads_per_run')} thread(s)."]),
        "",
        "Training curves: `loss.png` beside this table. Training subset: VOC2007 mAP on the fixed subset of the "
        "training split (eval.train_images) after the last epoch.",
        *(["", "Means over the seeds " + ", ".join(str(s) for s in meta["seeds"]["train"]) + " (each row above: "
           "the mean of its seeds):", "", meta["stats_md"]] if meta.get("stats_md") else []),
        "",
        "Commands:",
        "",
        *[f"    {c}" for c in meta["commands"]],
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    try:
        presets = load_runs()
    except RunsError as e:
        _fail(str(e))
    runs = all_runs(presets)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/bench_synthetic_cpu.yaml")
    p.add_argument("--out", default=None, help="output folder (default runs/<train.name>_quality)")
    p.add_argument("--runs", default="baseline",
                   help="comma list of run names and preset groups (default baseline: "
                        f"{','.join(presets['baseline'])}); each preset is configs/quality_runs/<preset>.yaml: "
                        + "; ".join(f"{k}: {','.join(v)}" for k, v in presets.items()))
    p.add_argument("--jobs", type=int, default=1,
                   help="runs trained at the same time (default 1). With N > 1 each run gets cpu_count / N "
                        "threads; their wall times and images/s are then measured under that sharing (the "
                        "table says so)")
    p.add_argument("--teacher", default=None,
                   help="a trained ANN-twin checkpoint for the transfer/distillation runs (default: the last.pt of "
                        "this invocation's --teacher-run, trained first); with --seeds, '{seed}' in it stands for "
                        "the seed (each seed's student learns from that seed's twin)")
    p.add_argument("--teacher-run", default="ann_twin",
                   help="the run whose last.pt is the teacher when --teacher is not given (default ann_twin; the "
                        "real-photo rows use real_ann_pretrained)")
    p.add_argument("--pretrained", default=None,
                   help="pretrained weights for the runs that start from them (real_ann_pretrained), e.g. the "
                        "Darknet yolov4-tiny.weights")
    p.add_argument("--seeds", default=None,
                   help="comma list of training seeds (train.seed), e.g. 0,1,2: every run is trained once per seed "
                        "(folders <out>/<run>/seed<k>; a transfer/distillation run of seed k learns from the teacher "
                        "run of seed k) and the table gives means, standard deviations and bootstrap intervals "
                        "(benchmarks/quality_stats.py). Default: one run each at the config's seed")
    p.add_argument("--compare", default=None,
                   help="a run of --runs: the table gives every row's paired difference to it, with its interval")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides applied to every run")
    args = p.parse_args()
    configure_logging(0)
    try:
        cfg = load_config(args.config, args.overrides)  # validates the overrides once, up front
        names = select_runs(args.runs, presets)
    except SpyoloError as e:
        _fail(str(e))
    if args.jobs < 1:
        _fail("--jobs must be >= 1")
    seeds: list[int | None] = [None]
    if args.seeds is not None:
        try:
            seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
        except ValueError:
            _fail(f"--seeds {args.seeds!r}: expected a comma list of integers, e.g. 0,1,2")
        if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
            _fail(f"--seeds {args.seeds!r}: expected distinct integers >= 0")
    if args.compare is not None and args.compare not in names:
        _fail(f"--compare {args.compare}: not among the runs ({', '.join(names)})")
    teacher_run = args.teacher_run
    if any(needs_teacher(runs[n]) for n in names) and not args.teacher and teacher_run not in names:
        _fail(f"the transfer/distillation runs need the ANN twin: add {teacher_run} to --runs or pass --teacher PATH")
    if not args.teacher and teacher_run in names and not is_ann(runs[teacher_run]):
        _fail(f"--teacher-run {teacher_run} does not train the ANN twin")
    if any(needs_pretrained(runs[n]) for n in names) and not (args.pretrained and Path(args.pretrained).is_file()):
        _fail(f"{', '.join(n for n in names if needs_pretrained(runs[n]))} need --pretrained WEIGHTS "
              f"(an existing file; got {args.pretrained!r})")
    out = Path(args.out or f"runs/{cfg.train.name}_quality")

    def folder(name: str, seed: int | None) -> Path:
        return out / name if seed is None else out / name / f"seed{seed}"

    def teacher_of(seed: int | None) -> str:
        if args.teacher:
            return args.teacher.replace("{seed}", "" if seed is None else str(seed))
        return str(folder(teacher_run, seed) / "weights" / "last.pt")

    missing = [teacher_of(s) for s in seeds if args.teacher and not Path(teacher_of(s)).is_file()]
    if missing:
        _fail(f"{missing[0]}: teacher checkpoint not found")
    jobs_todo = [(n, s) for n in names for s in seeds]
    run_overrides = {(n, s): overlay_overrides(runs[n], teacher_of(s), str(args.pretrained))
                     + ([] if s is None else [f"train.seed={s}"]) for n, s in jobs_todo}
    for key in jobs_todo:  # every run's config is checked before the first one starts
        try:
            apply_overrides(copy.deepcopy(cfg), run_overrides[key])
        except ConfigError as e:
            _fail(f"run {key[0]} on {args.config}: {e}")
    from spyolo.cli.train import run_files

    earlier = sorted({n for n, s in jobs_todo if folder(n, s).is_dir() and run_files(folder(n, s))})
    if earlier:
        _fail(f"{out} already holds runs {', '.join(earlier)}; "
              f"choose another --out (earlier runs are never overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    from spyolo.datasets import ensure_synthetic

    ensure_synthetic(cfg.data)  # once, here: concurrent runs must not generate the data side by side
    py = sys.executable
    threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None
    commands: dict[tuple[str, int | None], list[str]] = {}
    results: dict[tuple[str, int | None], dict] = {}
    # the teacher runs first when others wait for them
    pending = sorted(jobs_todo, key=lambda k: k[0] != teacher_run) if not args.teacher else list(jobs_todo)
    running: dict[tuple[str, int | None], Job] = {}

    def tag(key: tuple[str, int | None]) -> str:
        return key[0] if key[1] is None else f"{key[0]}_seed{key[1]}"

    def ready(key: tuple[str, int | None]) -> bool:
        return args.teacher is not None or not needs_teacher(runs[key[0]]) or (teacher_run, key[1]) in results

    def launch(key: tuple[str, int | None]) -> None:
        run_dir = folder(*key)
        train_cmd = [py, str(TOOLS / "train.py"), "--config", args.config, "--run-dir", str(run_dir), "--exist-ok",
                     "--no-progress", *args.overrides, *run_overrides[key], "train.eval_every=0"]
        commands[key] = [shown(train_cmd)]
        running[key] = _start(train_cmd, out / f"{tag(key)}_train.log", threads)

    def evaluate(key: tuple[str, int | None], train_s: float) -> None:
        name = key[0]
        run_dir = folder(*key)
        eval_json = run_dir / "eval" / "metrics.json"
        eval_cmd = [py, str(TOOLS / "eval.py"), "--weights", str(run_dir / "weights" / "last.pt"), "--coco",
                    "--json", str(eval_json), "--records", str(run_dir / "eval" / "records.npz"),
                    "--out", str(run_dir / "eval"), "--no-progress", *args.overrides]
        spiking = not is_ann(runs[name])
        if spiking:
            eval_cmd.append("--spikes")
        log = out / f"{tag(key)}_eval.log"
        _finish(_start(eval_cmd, log, threads), log)
        commands[key].append(shown(eval_cmd))
        spikes = run_dir / "eval" / "spike_stats.json" if spiking else None
        results[key] = summarise(name, run_dir, eval_json, spikes, train_s)
        if key[1] is not None:
            results[key]["seed"] = key[1]
        print(json.dumps(results[key]), flush=True)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # so that `finally` runs
    try:
        while pending or running:
            while len(running) < args.jobs and any(ready(k) for k in pending):
                key = next(k for k in pending if ready(k))
                pending.remove(key)
                launch(key)
            done = None
            while done is None:
                done = next((k for k, job in running.items() if job.poll() is not None), None)
                if done is None:
                    time.sleep(1.0)
            job = running.pop(done)
            evaluate(done, _finish(job, out / f"{tag(done)}_train.log"))
    finally:  # a failed, interrupted or terminated benchmark leaves no training behind
        for job in running.values():
            job.kill()
    rows = [_mean_row([results[(n, s)] for s in seeds]) for n in names]
    by = {r["run"]: r for r in rows}

    def ratio(a, b):
        return by[a]["map_voc07"] / by[b]["map_voc07"] if a in by and b in by and by[b]["map_voc07"] > 0 else None

    reference = teacher_run if teacher_run in by else "ann_twin"
    ann = by.get(reference, {}).get("map_voc07")
    fptt_rows = [r for r in rows if is_fptt(runs[r["run"]])]
    best = max(fptt_rows, key=lambda r: r["map_voc07"])["run"] if fptt_rows else None
    from benchmarks.quality_stats import load_row, statistics
    from benchmarks.quality_stats import write as write_stats

    stats = statistics([load_row(f"{out / n}:{n}") for n in names], reference if reference in by else None,
                       args.compare)
    write_stats(stats, out, title=f"{args.config}: VOC2007 mAP, test split and training subset")
    from benchmarks.quality_stats import markdown as stats_markdown
    meta = {
        "config": args.config, "overrides": args.overrides, "machine": machine_info(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commands": [shown([py, "-m", "benchmarks.bench_quality", *sys.argv[1:]])]
        + [c for k in jobs_todo for c in commands[k]],
        "jobs": args.jobs, "threads_per_run": threads or _inherited_threads(),
        "seeds": {"data": cfg.data.synthetic_seed,
                  "train": cfg.train.seed if seeds == [None] else [s for s in seeds]},
        "targets": {"fptt_over_bptt": ratio("spyv4_fptt", "spyv4_bptt"),
                    "fptt_over_ann": ratio("spyv4_fptt", "ann_twin"),
                    "best_fptt_run": best, "best_fptt_over_ann": ratio(best, reference) if best else None,
                    "reference_run": reference,
                    "recipe_fptt_over_bptt": ratio("real_spyv4_fptt_recipe", "real_spyv4_bptt_recipe"),
                    "ann_in_band": (None if ann is None else 0.6 <= ann <= 0.9)},
        "per_seed": [results[k] for k in jobs_todo] if seeds != [None] else None,
        "stats": stats,
    }
    md_meta = {**meta, "stats_md": stats_markdown(stats) if seeds != [None] else ""}
    atomic_write_text(out / "table.json", json.dumps({"rows": rows, **meta}, indent=2))
    from spyolo.eval.plots import plot_training_curves

    seed_note = "" if seeds == [None] else f" (seed {seeds[0]})"
    plot_training_curves({n: folder(n, seeds[0]) for n in names}, out / "loss.png",
                         title=f"{args.config}: training loss per epoch{seed_note}")
    md = markdown(rows, md_meta, {n for n in names if is_ann(runs[n])})
    atomic_write_text(out / "table.md", md)
    print("\n" + md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
