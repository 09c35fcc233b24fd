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

Writes into ``--out``: ``energy_table.md`` and ``energy_table.json`` (one row per run folder: variant,
VOC2007 mAP, its ratio to the paper's LTC row, firing rate, ACs, MACs, elementwise operations, energy per
image, energy / ANN twin, training wall time) and ``energy_vs_map.png`` (mAP against energy, the ANN twin
marked). See docs/energy.md.
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


def _classes_of(run: Path) -> int:
    """Number of classes of a run's checkpoint."""
    from spyolo.checkpoint import load_checkpoint

    for name in ("last.pt", "best.pt"):
        path = run / "weights" / name
        if path.is_file():
            return len(load_checkpoint(path)["class_names"])
    raise BenchError(f"{run}/weights: no checkpoint to read the classes from")


def add_ratios(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``map_over_ltc`` of every row against the paper's LTC row (the first SPYv4 row of tau_mode ltc)."""
    ltc = next((r for r in rows if r["tau_mode"] == "ltc"), None)
    for r in rows:
        r["map_over_ltc"] = (r["map_voc07"] / ltc["map_voc07"]) if ltc and ltc["map_voc07"] > 0 else None
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


def markdown(rows: list[dict[str, Any]], title: str) -> str:
    lines = [
        f"## {title}",
        "",
        "| variant | T | VOC2007 mAP (11-pt) % | mAP / LTC | firing rate % | ACs/img | MACs/img | elementwise/img "
        "| energy/img (µJ) | energy / ANN twin | train wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['timesteps']} | {_fmt(r['map_voc07'], 100)} | "
            f"{_fmt(r['map_over_ltc'], digits=3)} | "
            f"{_fmt(r['firing_rate'], 100)} | {_si(r['acs'])} | {_si(r['macs'])} | {_si(r['elementwise'])} | "
            f"{_fmt(r['energy_j'], 1e6, 1)} | {_fmt(r['energy_over_ann'], digits=3)} | "
            f"{_fmt(r['train_wall_s'], digits=0)} |"
        )
    lines += [
        "",
        "Energy per image over all T timesteps: ACs x 0.9 pJ + MACs x 4.6 pJ + elementwise additions x 0.9 pJ + "
        "multiplications x 3.7 pJ (45 nm, 32-bit float; Horowitz, ISSCC 2014; docs/spike_stats.md). The ANN twin: "
        "one pass, counted the same way. mAP / LTC: against the row of the paper's neuron (tau_mode=ltc).",
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
        if r["kind"] == "ann":
            ax.scatter([energy_uj], [100 * r["map_voc07"]], marker="*", s=160, color="tab:red", zorder=3)
            label = "ANN twin"
        else:
            ax.scatter([energy_uj], [100 * r["map_voc07"]], marker="o", s=50, color="tab:blue", zorder=3)
            label = f"{r['tau_mode']} (T={r['timesteps']})"
        ax.annotate(label, (energy_uj, 100 * r["map_voc07"]), textcoords="offset points", xytext=(6, 4), fontsize=8)
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
    p.add_argument("runs", nargs="+", help="run folders (args.yaml, eval/metrics.json, eval/spike_stats.json)")
    p.add_argument("--out", required=True, help="folder for energy_table.md/.json and energy_vs_map.png")
    p.add_argument("--title", default="Energy and accuracy of the LTC variants", help="table and chart title")
    args = p.parse_args(argv)
    from spyolo.utils.io import atomic_write_json, atomic_write_text

    try:
        rows = [read_run(Path(r)) for r in args.runs]
    except BenchError as err:
        print(f"bench_energy: {err}", file=sys.stderr)
        return 2
    add_ratios(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(rows, args.title)
    atomic_write_text(out / "energy_table.md", md)
    atomic_write_json(out / "energy_table.json", {"title": args.title, "rows": rows})
    plot(rows, out / "energy_vs_map.png", args.title)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
