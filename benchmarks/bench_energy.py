#!/usr/bin/env python3
"""Energy against accuracy of the LTC time-constant variants (``model.tau_mode``), one table per benchmark.

    python -m benchmarks.bench_energy --title "CPU learning-quality benchmark" --out runs/energy_cpu/table \\
        runs/energy_cpu/ltc/spyv4_fptt runs/energy_cpu/spike/spyv4_fptt runs/energy_cpu/depthwise/spyv4_fptt \\
        runs/energy_cpu/affine/spyv4_fptt runs/energy_cpu/channel/spyv4_fptt runs/energy_cpu/ann/ann_twin

It trains nothing: each argument is a run folder written by ``benchmarks/bench_quality.py`` (or by
``tools/train.py`` followed by ``tools/eval.py --weights RUN/weights/last.pt --spikes --json
RUN/eval/metrics.json --out RUN/eval``). From each it reads ``args.yaml`` (the variant: ``model.kind``,
``model.tau_mode``), ``eval/metrics.json`` (VOC2007 11-point mAP), ``eval/spike_stats.json`` (firing rate,
ACs, MACs, elementwise operations, energy per image, the ANN twin's energy; :mod:`spyolo.stats`), and the
training wall time (``table.json`` of the bench_quality folder above it, else the sum of
``results.csv``'s ``epoch_time_s``). An ANN-twin run folder needs no spike statistics: its operations
are counted from its config (:func:`spyolo.stats.count_dense_ops`).

An argument may also be a row of ``bench_quality --seeds`` (a folder of ``seed<k>/`` run folders): the row
gives the mean over its seeds of every figure, the mAP's standard deviation, and a 95% bootstrap interval of
the mean mAP and of its ratio to the ANN-twin row (:mod:`benchmarks.quality_stats`: test images and seeds
resampled together; it needs every seed's ``eval/records.npz``). Rows of other seeds are compared over the
seeds both have (a ratio's value and interval; the table names those seeds), each row's mean and interval
cover its own seeds; the chart
draws the interval as a vertical bar and the seeds' range of energy as a horizontal one.

Writes into ``--out``: ``energy_table.md`` and ``energy_table.json`` (one row per run folder: variant,
VOC2007 mAP, its ratio to the paper's LTC row, firing rate, ACs, MACs, elementwise operations, energy per
image, energy / ANN twin, mAP / ANN twin, training wall time) and ``energy_vs_map.png`` (mAP against
energy, the ANN twin marked). See docs/energy.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


class BenchError(Exception):
    """A run folder that cannot be read (one line, exit status 2)."""


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BenchError(f"{path}: not found") from None
    except (OSError, ValueError) as err:
        raise BenchError(f"{path}: cannot be read as JSON ({err})") from None


def _wall_time(run: Path) -> float | None:
    """Training wall time of ``run``: bench_quality's measurement if there is one, else the epochs' sum."""
    table = run.parent / "table.json"
    if table.is_file():
        for row in _read_json(table).get("rows", []):
            if row.get("run") == run.name and row.get("train_wall_s") is not None:
                return float(row["train_wall_s"])
    results = run / "results.csv"
    if results.is_file():
        with results.open() as fh:
            times = [float(r["epoch_time_s"]) for r in csv.DictReader(fh) if r.get("epoch_time_s")]
        return sum(times) if times else None
    return None


def read_run(run: Path) -> dict[str, Any]:
    """One table row from a run folder (see the module docstring)."""
    from spyolo.config import load_config
    from spyolo.errors import SpyoloError

    args = run / "args.yaml"
    if not args.is_file():
        raise BenchError(f"{run}: no args.yaml (not a training run folder)")
    try:
        cfg = load_config(str(args))
    except SpyoloError as err:
        raise BenchError(str(err)) from None
    metrics = run / "eval" / "metrics.json"
    if not metrics.is_file():
        raise BenchError(f"{metrics}: not found; evaluate the run first: tools/eval.py --weights "
                         f"{run}/weights/last.pt --spikes --json {metrics} --out {run}/eval")
    res = _read_json(metrics)
    spiking = cfg.model.kind == "spyv4"
    mode = cfg.model.tau_mode + "".join(f", {name}: {m}" for name, m in cfg.model.tau_mode_layers.items())
    row: dict[str, Any] = {
        "run": str(run),
        "variant": f"SPYv4 tau_mode={mode}" if spiking else "ANN twin",
        "kind": cfg.model.kind,
        "tau_mode": mode if spiking else None,
        "timesteps": cfg.model.timesteps if spiking else 1,
        "img_size": cfg.data.img_size,
        "width": cfg.model.width,
        "map_voc07": float(res["map_voc07"]),
        "train_wall_s": _wall_time(run),
    }
    if spiking:
        spikes_json = run / "eval" / "spike_stats.json"
        if not spikes_json.is_file():
            raise BenchError(f"{spikes_json}: not found; evaluate with --spikes: tools/eval.py --weights "
                             f"{run}/weights/last.pt --spikes --json {metrics} --out {run}/eval")
        sp = _read_json(spikes_json)
        totals, twin = sp["totals"], sp["ann_twin"]
        if "ew_adds" not in totals:
            raise BenchError(f"{spikes_json}: written before elementwise operations were counted; "
                             "evaluate the run again with tools/eval.py --spikes")
        row.update(
            firing_rate=float(totals["mean_firing_rate"]), acs=float(totals["acs"]), macs=float(totals["macs"]),
            elementwise=float(totals["ew_adds"]) + float(totals["ew_muls"]), energy_j=float(totals["energy_j"]),
            ann_energy_j=float(twin["energy_j"]),
        )
    else:
        from spyolo.models import build_model
        from spyolo.stats import HOROWITZ_45NM, count_dense_ops

        model = build_model(cfg.model, num_classes=_classes_of(run))
        ops = count_dense_ops(model, cfg.data.img_size)
        energy = HOROWITZ_45NM.energy_j(0.0, ops.macs, ops.adds, ops.muls)
        row.update(firing_rate=None, acs=0.0, macs=float(ops.macs), elementwise=float(ops.adds + ops.muls),
                   energy_j=energy, ann_energy_j=energy)
    row["energy_over_ann"] = row["energy_j"] / row["ann_energy_j"] if row["ann_energy_j"] > 0 else None
    return row


SEED_AVERAGED = ("map_voc07", "firing_rate", "acs", "macs", "elementwise", "energy_j", "ann_energy_j",
                 "energy_over_ann", "train_wall_s")
"""Figures a row of several seeds gives as the mean over its seeds."""


def read_row(run: Path) -> dict[str, Any]:
    """A table row from a run folder, or the mean over the seeds of a row folder (module docstring)."""
    from benchmarks.quality_stats import seed_folders

    seeds = seed_folders(run) if run.is_dir() else []
    if not seeds:
        return read_run(run)
    per_seed = [read_run(p) for p in seeds]
    variants = {(r["variant"], r["timesteps"], r["img_size"], r["width"]) for r in per_seed}
    if len(variants) > 1:
        raise BenchError(f"{run}: its seed folders hold different variants ({sorted(v[0] for v in variants)})")
    row = dict(per_seed[0])
    row["run"] = str(run)
    row["seeds"] = [int(p.name[4:]) for p in seeds]
    for key in SEED_AVERAGED:
        values = [r[key] for r in per_seed]
        if all(v is not None for v in values):
            row[key] = sum(values) / len(values)
            row[f"{key}_per_seed"] = values
    maps = row["map_voc07_per_seed"]
    if len(maps) > 1:
        mean = row["map_voc07"]
        row["map_voc07_std"] = (sum((v - mean) ** 2 for v in maps) / (len(maps) - 1)) ** 0.5
    return row


def add_intervals(rows: list[dict[str, Any]], replicates: int = 1000) -> str | None:
    """Bootstrap intervals of the rows' mean mAP (``map_voc07_interval``) and, with an ANN-twin row, of
    their ratio to it (``map_over_ann_interval``), from every seed's records
    (:func:`benchmarks.quality_stats.statistics`: a row's interval covers its own seeds, its ratio the seeds
    it shares with the twin). Returns why none was computed (a row without records, rows on other
    images), or None."""
    if not any(r.get("seeds") for r in rows):
        return "single runs: no intervals (rows of bench_quality --seeds have them)"
    from benchmarks.quality_stats import StatsInputError, load_row, statistics

    ann = next((i for i, r in enumerate(rows) if r["kind"] == "ann"), None)
    try:
        loaded = [load_row(r["run"]) for r in rows]
        for i, row in enumerate(loaded):
            row.name = str(i)  # folders may share a name
        missing = next((run.folder for row in loaded for run in row.runs if run.records is None), None)
        if missing is not None:
            raise StatsInputError(f"{missing}: no eval/records.npz (evaluate with tools/eval.py --records)")
        stats = statistics(loaded, reference=None if ann is None else str(ann), replicates=replicates)
    except StatsInputError as err:
        return f"no intervals: {err}"
    for r, entry in zip(rows, stats["rows"]):
        r["map_voc07_interval"] = entry["map_voc07_interval"]
        if "ratio_interval" in entry:
            r["map_over_ann_interval"] = entry["ratio_interval"]
    return None


def _shared_ratio(row: dict[str, Any], ref: dict[str, Any]) -> tuple[float | None, list[int] | None]:
    """``row``'s mean mAP over ``ref``'s, both over the seeds they share; the seeds when they are not
    all of both rows' seeds (None otherwise)."""
    if row.get("seeds") and ref.get("seeds") and row["seeds"] != ref["seeds"]:
        shared = [k for k in row["seeds"] if k in ref["seeds"]]
        if not shared:
            return None, []
        mine = sum(row["map_voc07_per_seed"][row["seeds"].index(k)] for k in shared) / len(shared)
        theirs = sum(ref["map_voc07_per_seed"][ref["seeds"].index(k)] for k in shared) / len(shared)
        return (mine / theirs if theirs > 0 else None), shared
    return (row["map_voc07"] / ref["map_voc07"] if ref["map_voc07"] > 0 else None), None


def _classes_of(run: Path) -> int:
    """Number of classes of a run's checkpoint."""
    from spyolo.checkpoint import load_checkpoint

    for name in ("last.pt", "best.pt"):
        path = run / "weights" / name
        if path.is_file():
            return len(load_checkpoint(path)["class_names"])
    raise BenchError(f"{run}/weights: no checkpoint to read the classes from")


def add_ratios(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``map_over_ltc`` of every row against the paper's LTC row (the first SPYv4 row of tau_mode ltc) and
    ``map_over_ann`` against the ANN-twin row (None without one). Rows of other seeds are compared over
    the seeds both have (``map_over_ltc_seeds``, ``map_over_ann_seeds``)."""
    ltc = next((r for r in rows if r["tau_mode"] == "ltc"), None)
    ann = next((r for r in rows if r["kind"] == "ann"), None)
    for r in rows:
        for key, ref in (("map_over_ltc", ltc), ("map_over_ann", ann)):
            r[key], shared = _shared_ratio(r, ref) if ref else (None, None)
            if shared is not None:
                r[f"{key}_seeds"] = shared
    return ltc


def _si(value: float | None) -> str:
    if value is None:
        return "-"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3f}{prefix}"
    return f"{value:.0f}"


def _fmt(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "-" if value is None else f"{scale * value:.{digits}f}"


def _map_cell(r: dict[str, Any]) -> str:
    text = _fmt(r["map_voc07"], 100)
    if r.get("map_voc07_std") is not None:
        text += f" ± {100 * r['map_voc07_std']:.2f}"
    if r.get("map_voc07_interval"):
        lo, hi = r["map_voc07_interval"]
        text += f" [{100 * lo:.2f}, {100 * hi:.2f}]"
    return text


def _seeds_note(r: dict[str, Any], key: str) -> str:
    shared = r.get(f"{key}_seeds")
    return "" if shared is None else f" (seeds {', '.join(str(k) for k in shared)})"


def _ratio_cell(r: dict[str, Any]) -> str:
    text = _fmt(r.get("map_over_ann"), digits=3)
    if r.get("map_over_ann_interval") and r["kind"] != "ann":
        lo, hi = r["map_over_ann_interval"]
        text += f" [{lo:.3f}, {hi:.3f}]"
    return text + _seeds_note(r, "map_over_ann")


def markdown(rows: list[dict[str, Any]], title: str, note: str | None = None) -> str:
    lines = [
        f"## {title}",
        "",
        "| variant | T | seeds | VOC2007 mAP (11-pt) % | mAP / ANN twin | mAP / LTC | firing rate % | ACs/img "
        "| MACs/img | elementwise/img | energy/img (µJ) | energy / ANN twin | train wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        seeds = ", ".join(str(k) for k in r["seeds"]) if r.get("seeds") else "1 run"
        lines.append(
            f"| {r['variant']} | {r['timesteps']} | {seeds} | {_map_cell(r)} | {_ratio_cell(r)} | "
            f"{_fmt(r['map_over_ltc'], digits=3)}{_seeds_note(r, 'map_over_ltc')} | "
            f"{_fmt(r['firing_rate'], 100)} | {_si(r['acs'])} | {_si(r['macs'])} | {_si(r['elementwise'])} | "
            f"{_fmt(r['energy_j'], 1e6, 1)} | {_fmt(r['energy_over_ann'], digits=3)} | "
            f"{_fmt(r['train_wall_s'], digits=0)} |"
        )
    lines += [
        "",
        "Energy per image over all T timesteps: ACs x 0.9 pJ + MACs x 4.6 pJ + elementwise additions x 0.9 pJ + "
        "multiplications x 3.7 pJ (45 nm, 32-bit float; Horowitz, ISSCC 2014; docs/spike_stats.md). The ANN twin: "
        "one pass, counted the same way. mAP / LTC: against the row of the paper's neuron (tau_mode=ltc); "
        "mAP / ANN twin: against the ANN-twin row. A row of several seeds: means over its seeds, the mAP's "
        "standard deviation and 95% bootstrap interval [low, high] (test images and seeds resampled together; "
        "benchmarks/quality_stats.py). Rows of other seeds are compared over the seeds both have, named in "
        "the cell; a ratio's interval pairs the two rows by seed and image.",
        *(["", note] if note else []),
        "",
        "Run folders:",
        "",
        *[f"    {r['run']}" for r in rows],
    ]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    from matplotlib.figure import Figure

    from spyolo.utils.io import atomic_save_figure

    fig = Figure(figsize=(6.0, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    for r in rows:
        energy_uj = 1e6 * r["energy_j"]
        y = 100 * r["map_voc07"]
        ann = r["kind"] == "ann"
        color = "tab:red" if ann else "tab:blue"
        yerr = xerr = None
        if r.get("map_voc07_interval"):
            lo, hi = (100 * v for v in r["map_voc07_interval"])
            yerr = [[max(0.0, y - lo)], [max(0.0, hi - y)]]
        energies = r.get("energy_j_per_seed")
        if energies and len(energies) > 1:
            xerr = [[max(0.0, energy_uj - 1e6 * min(energies))], [max(0.0, 1e6 * max(energies) - energy_uj)]]
        if yerr is not None or xerr is not None:
            ax.errorbar([energy_uj], [y], yerr=yerr, xerr=xerr, fmt="none", ecolor=color, alpha=0.6, capsize=3)
        ax.scatter([energy_uj], [y], marker="*" if ann else "o", s=160 if ann else 50, color=color, zorder=3)
        label = "ANN twin" if ann else f"{r['tau_mode']} (T={r['timesteps']})"
        if r.get("seeds"):
            label += f", {len(r['seeds'])} seeds"
        ax.annotate(label, (energy_uj, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    twin = next((r["ann_energy_j"] for r in rows if r.get("ann_energy_j")), None)
    if twin and not any(r["kind"] == "ann" for r in rows):
        ax.axvline(1e6 * twin, color="tab:red", linestyle="--", label="ANN twin energy")
        ax.legend(loc="lower right")
    ax.set_xscale("log")
    ax.set_xlabel("energy per image (µJ, log scale)")
    ax.set_ylabel("VOC2007 mAP (11-point, %)")
    ax.grid(True, alpha=0.3, which="both")
    ax.set_title(title)
    fig.tight_layout()
    return atomic_save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run folders (args.yaml, eval/metrics.json, eval/spike_stats.json), or "
                                           "rows of bench_quality --seeds (folders of seed<k>/ run folders)")
    p.add_argument("--out", required=True, help="folder for energy_table.md/.json and energy_vs_map.png")
    p.add_argument("--title", default="Energy and accuracy of the LTC variants", help="table and chart title")
    p.add_argument("--replicates", type=int, default=1000, help="bootstrap replicates of the intervals (default 1000)")
    args = p.parse_args(argv)
    if args.replicates < 100:
        print(f"bench_energy: --replicates {args.replicates}: use at least 100", file=sys.stderr)
        return 2
    from spyolo.utils.io import atomic_write_json, atomic_write_text

    try:
        rows = [read_row(Path(r)) for r in args.runs]
    except BenchError as err:
        print(f"bench_energy: {err}", file=sys.stderr)
        return 2
    add_ratios(rows)
    note = add_intervals(rows, args.replicates)
    if note and any(r.get("seeds") for r in rows):
        print(f"bench_energy: {note}", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(rows, args.title, note)
    atomic_write_text(out / "energy_table.md", md)
    atomic_write_json(out / "energy_table.json", {"title": args.title, "rows": rows})
    plot(rows, out / "energy_vs_map.png", args.title)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
