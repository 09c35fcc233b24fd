#!/usr/bin/env python3
"""Means over seeds, bootstrap intervals over test images, and paired differences of
``benchmarks/bench_quality.py`` rows.

    python -m benchmarks.quality_stats runs/cb/real_ann_pretrained runs/cb/real_spyv4_fptt_recipe \
        runs/cb2/real_spyv4_fptt_recipe:feature --reference real_ann_pretrained \
        --compare real_spyv4_fptt_recipe --out runs/cb/stats

Each argument is a run folder of the benchmark, optionally followed by ``:LABEL`` (the row's name in
the table; default: the folder's name). A run folder holds one seed (the benchmark's layout without
``--seeds``: ``results.csv``, ``eval/metrics.json``, ``eval/records.npz``) or one sub-folder per
seed (``seed0/``, ``seed1/``, ...; with ``--seeds``). Per row the table gives the mean and standard
deviation over seeds of VOC2007 mAP on the test split and on the training subset
(``eval.train_images``), and a 95% interval of the mean test mAP from a bootstrap that resamples
the test images (the same resample for every row, so that rows stay paired) and the seeds (pairs
by seed index). With ``--reference`` every row gets its ratio to that row, with its interval; with
``--compare`` the paired difference to that row (same seeds, same images), with its interval: an
interval that contains 0 is no evidence of a difference.

Rows must be scored on the same test images (the records' image ids are compared). Writes
``stats.json``, ``stats.md`` and ``stats.png`` (test and training-subset mAP per row, the bars at
the mean, the whiskers the 95% interval, the seeds as points) into ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spyolo.eval.report import read_records
from spyolo.eval.voc import map_of_images
from spyolo.utils.io import atomic_save_figure, atomic_write_text

__all__ = ["Row", "SeedRun", "bootstrap", "load_row", "main", "markdown", "plot", "shared_means", "statistics"]

BOOTSTRAP = 1000
"""Bootstrap replicates."""


class StatsInputError(ValueError):
    """A run folder that cannot be used (the message names it and the problem)."""


@dataclass
class SeedRun:
    """One trained and evaluated seed of a row."""

    folder: Path
    seed: int | None
    map_voc07: float
    map_area: float
    train_map_voc07: float | None
    final: dict[str, float]
    records: dict[str, Any] | None


@dataclass
class Row:
    """A row of the table: one configuration over its seeds."""

    name: str
    runs: list[SeedRun] = field(default_factory=list)

    @property
    def seeds(self) -> list[int | None]:
        return [r.seed for r in self.runs]


def _seed_of(folder: Path) -> int | None:
    if folder.name.startswith("seed") and folder.name[4:].isdigit():
        return int(folder.name[4:])
    return None


def seed_folders(folder: Path) -> list[Path]:
    """The ``seed<k>/`` run folders of a bench_quality row, by seed (none for a single run folder)."""
    return sorted((p for p in folder.iterdir() if p.is_dir() and _seed_of(p) is not None), key=_seed_of)


def _load_seed(folder: Path) -> SeedRun:
    metrics = folder / "eval" / "metrics.json"
    if not metrics.is_file():
        raise StatsInputError(f"{folder}: no eval/metrics.json (not an evaluated benchmark run)")
    try:
        res = json.loads(metrics.read_text())
        map_voc07, map_area = float(res["map_voc07"]), float(res["map_area"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StatsInputError(f"{metrics}: not the metrics of tools/eval.py ({type(exc).__name__}: {exc})") from None
    final: dict[str, float] = {}
    train_map = None
    results = folder / "results.csv"
    if results.is_file():
        with results.open() as f:
            rows = list(csv.DictReader(f))
        if rows:
            last = rows[-1]
            for key in ("loss", "box", "obj", "cls", "distill", "firing_rate"):
                try:
                    value = float(last.get(key) or "nan")
                except ValueError:
                    value = float("nan")
                if value == value:
                    final[key] = value
            try:
                value = float(last.get("train_map_voc07") or "nan")
                train_map = value if value == value else None
            except ValueError:
                train_map = None
    records_file = folder / "eval" / "records.npz"
    try:
        records = read_records(records_file) if records_file.is_file() else None
    except ValueError as exc:
        raise StatsInputError(str(exc)) from None
    return SeedRun(folder, _seed_of(folder), map_voc07, map_area, train_map, final, records)


def load_row(spec: str) -> Row:
    """The row of ``FOLDER[:LABEL]``: the folder's seeds (``seed<k>/`` sub-folders) or the folder itself."""
    path_text, sep, label = spec.rpartition(":")
    if not sep or not Path(path_text).is_dir():
        path_text, label = spec, ""
    folder = Path(path_text)
    if not folder.is_dir():
        raise StatsInputError(f"{folder}: run folder not found")
    seeds = seed_folders(folder)
    runs = [_load_seed(p) for p in seeds] if seeds else [_load_seed(folder)]
    return Row(label or folder.name, runs)


def _paired_seed_positions(rows: list[Row]) -> list[int | None]:
    """The seeds every row has (rows of one seed without a seed folder pair with anything)."""
    multi = [r for r in rows if len(r.runs) > 1 or r.runs[0].seed is not None]
    if not multi:
        return [None]
    common = set(multi[0].seeds)
    for r in multi[1:]:
        common &= set(r.seeds)
    return sorted(common)  # type: ignore[arg-type]


def _run_of(row: Row, seed: int | None) -> SeedRun:
    if len(row.runs) == 1 and row.runs[0].seed is None:
        return row.runs[0]
    return next(r for r in row.runs if r.seed == seed)


def bootstrap(rows: list[Row], replicates: int = BOOTSTRAP, seed: int = 0) -> tuple[np.ndarray, list[int | None]]:
    """Bootstrap replicates of the mean test mAP of every row: an array ``(len(rows), replicates)``.

    Each replicate draws the test images with replacement (the same draw for every row) and the seeds
    with replacement (the same seed indices for every row), and takes each row's mean over the drawn
    seeds of the mAP on the drawn images (:func:`spyolo.eval.voc.map_of_images`).

    Raises:
        StatsInputError: a seed without records, or rows scored on other images.
    """
    seeds = _paired_seed_positions(rows)
    if not seeds:
        raise StatsInputError("the rows share no seed: " + "; ".join(f"{r.name}: {r.seeds}" for r in rows))
    ids = None
    for row in rows:
        for s in seeds:
            run = _run_of(row, s)
            if run.records is None:
                raise StatsInputError(f"{run.folder}: no eval/records.npz (evaluate with tools/eval.py --records)")
            if ids is None:
                ids = run.records["image_ids"]
            elif run.records["image_ids"] != ids:
                raise StatsInputError(f"{run.folder}: scored on other test images than {rows[0].runs[0].folder}")
    assert ids is not None
    rng = np.random.default_rng(seed)
    n = len(ids)
    out = np.zeros((len(rows), replicates))
    for b in range(replicates):
        images = rng.integers(0, n, n)
        drawn = rng.integers(0, len(seeds), len(seeds))
        for i, row in enumerate(rows):
            out[i, b] = np.mean([map_of_images(_run_of(row, seeds[k]).records, images)[0] for k in drawn])
    return out, seeds


def _interval(values: np.ndarray) -> list[float]:
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [float(lo), float(hi)]


def shared_means(row: Row, other: Row) -> tuple[float, float, list[int | None]]:
    """The mean test mAP of ``row`` and of ``other`` over the seeds both have, and those seeds."""
    shared = _paired_seed_positions([row, other])
    if not shared:
        raise StatsInputError(f"{row.name} and {other.name} share no seed ({row.seeds} / {other.seeds})")
    return (float(np.mean([_run_of(row, s).map_voc07 for s in shared])),
            float(np.mean([_run_of(other, s).map_voc07 for s in shared])), shared)


def statistics(rows: list[Row], reference: str | None = None, compare: str | None = None,
               replicates: int = BOOTSTRAP) -> dict[str, Any]:
    """The table's numbers: per row the seeds' values, mean, standard deviation and intervals.

    When every row has the same seeds, one bootstrap draws the images and seeds for all rows (paired).
    Otherwise each row's interval comes from its own seeds, and its ratio to ``reference`` and
    difference to ``compare`` (value and interval) from the seeds it shares with that row
    (``ratio_seeds``, ``difference_seeds``), so that a mean and its interval always cover the same seeds.
    """
    names = [r.name for r in rows]
    for flag, name in (("--reference", reference), ("--compare", compare)):
        if name is not None and name not in names:
            raise StatsInputError(f"{flag} {name}: no such row (rows: {', '.join(names)})")
    have_records = all(run.records is not None for row in rows for run in row.runs)
    same_seeds = len({tuple(r.seeds) for r in rows}) == 1
    seeds = _paired_seed_positions(rows)
    boot = bootstrap(rows, replicates)[0] if have_records and same_seeds else None
    pairs: dict[tuple[int, int], np.ndarray] = {}

    def own(i: int) -> np.ndarray:  # bootstrap replicates of row i's mean over its own seeds
        return boot[i] if boot is not None else bootstrap([rows[i]], replicates)[0][0]

    def pair(i: int, j: int) -> np.ndarray:  # rows i and j resampled together over their shared seeds
        if boot is not None:
            return boot[[i, j]]
        if (i, j) not in pairs:
            pairs[(i, j)] = bootstrap([rows[i], rows[j]], replicates)[0]
        return pairs[(i, j)]

    out_rows = []
    for i, row in enumerate(rows):
        test = np.array([r.map_voc07 for r in row.runs])
        train = [r.train_map_voc07 for r in row.runs if r.train_map_voc07 is not None]
        entry: dict[str, Any] = {
            "run": row.name, "seeds": row.seeds, "folders": [str(r.folder) for r in row.runs],
            "map_voc07": [float(v) for v in test], "map_voc07_mean": float(test.mean()),
            "map_voc07_std": float(test.std(ddof=1)) if len(test) > 1 else None,
            "map_area_mean": float(np.mean([r.map_area for r in row.runs])),
            "train_map_voc07": [float(v) for v in train],
            "train_map_voc07_mean": float(np.mean(train)) if train else None,
            "train_map_voc07_std": float(np.std(train, ddof=1)) if len(train) > 1 else None,
            "final": {k: float(np.mean([r.final[k] for r in row.runs if k in r.final]))
                      for k in sorted({k for r in row.runs for k in r.final})},
        }
        if have_records:
            entry["map_voc07_interval"] = _interval(own(i))
        if reference is not None:
            j = names.index(reference)
            ref = rows[j]
            mean, ref_mean, shared = shared_means(row, ref)
            if not same_seeds:
                entry["ratio_seeds"] = shared
            entry["ratio_to_reference"] = float(mean / ref_mean) if ref_mean > 0 else None
            train_pairs = [(_run_of(row, s).train_map_voc07, _run_of(ref, s).train_map_voc07) for s in shared]
            if train_pairs and all(a is not None and b is not None for a, b in train_pairs):
                ref_train = float(np.mean([b for _, b in train_pairs]))
                if ref_train > 0:
                    entry["train_ratio_to_reference"] = float(np.mean([a for a, _ in train_pairs]) / ref_train)
            if have_records and ref_mean > 0:
                both = pair(i, j)
                entry["ratio_interval"] = _interval(both[0] / np.maximum(both[1], 1e-12))
        if compare is not None:
            j = names.index(compare)
            mean, other_mean, shared = shared_means(row, rows[j])
            if not same_seeds:
                entry["difference_seeds"] = shared
            entry["difference_to_compare"] = mean - other_mean
            if have_records:
                both = pair(i, j)
                entry["difference_interval"] = _interval(both[0] - both[1])
        out_rows.append(entry)
    return {"rows": out_rows, "reference": reference, "compare": compare, "paired_seeds": seeds,
            "same_seeds": same_seeds, "replicates": replicates if have_records else 0}


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def markdown(stats: dict[str, Any], title: str = "") -> str:
    """The table as markdown (percent; intervals in brackets)."""
    ref, cmp_ = stats["reference"], stats["compare"]
    head = ["run", "seeds", "VOC2007 mAP, mean ± sd", "95% interval", "per seed",
            "training subset, mean ± sd"]
    if ref:
        head += [f"/ {ref} (test)", "95% interval", f"/ {ref} (training subset)"]
    if cmp_:
        head += [f"- {cmp_} (points)", "95% interval"]
    lines = ([f"{title}", ""] if title else []) + ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in stats["rows"]:
        sd = f" ± {_pct(r['map_voc07_std'])}" if r["map_voc07_std"] is not None else ""
        tsd = f" ± {_pct(r['train_map_voc07_std'])}" if r["train_map_voc07_std"] is not None else ""
        interval = r.get("map_voc07_interval")
        cells = [r["run"], ",".join("-" if s is None else str(s) for s in r["seeds"]),
                 f"{_pct(r['map_voc07_mean'])}{sd}",
                 f"[{_pct(interval[0])}, {_pct(interval[1])}]" if interval else "-",
                 " / ".join(_pct(v) for v in r["map_voc07"]),
                 f"{_pct(r['train_map_voc07_mean'])}{tsd}" if r["train_map_voc07_mean"] is not None else "-"]
        if ref:
            ri = r.get("ratio_interval")
            tr = r.get("train_ratio_to_reference")
            rr = r.get("ratio_to_reference")
            cells += [f"{rr:.3f}" if rr is not None else "-", f"[{ri[0]:.3f}, {ri[1]:.3f}]" if ri else "-",
                      f"{tr:.3f}" if tr is not None else "-"]
        if cmp_:
            di = r.get("difference_interval")
            cells += [f"{100 * r['difference_to_compare']:+.2f}",
                      f"[{100 * di[0]:+.2f}, {100 * di[1]:+.2f}]" if di else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    if stats.get("same_seeds", True):
        lines += ["", f"Intervals: 95% percentile bootstrap ({stats['replicates']} replicates) resampling the test "
                  "images and the seeds together, the same draws for every row (paired); seeds paired by index: "
                  f"{', '.join('-' if s is None else str(s) for s in stats['paired_seeds'])}."]
    else:
        lines += ["", f"Intervals: 95% percentile bootstrap ({stats['replicates']} replicates) resampling the test "
                  "images and the seeds together. The rows have different seeds: each row's mean and interval "
                  "cover its own seeds; its ratio and difference (value and interval) cover the seeds it shares "
                  "with the other row, paired by seed and image:"]
        for r in stats["rows"]:
            for key, what in (("ratio_seeds", f"/ {ref}"), ("difference_seeds", f"- {cmp_}")):
                if key in r:
                    shared = ", ".join("-" if s is None else str(s) for s in r[key])
                    lines.append(f"- {r['run']} {what}: seeds {shared}")
    return "\n".join(lines) + "\n"


def plot(stats: dict[str, Any], out: str | Path, title: str = "") -> Path:
    """Bars of the mean test mAP (with the interval) and of the mean training-subset mAP per row,
    each seed a point."""
    from matplotlib.figure import Figure

    rows = stats["rows"]
    fig = Figure(figsize=(8.5, 0.55 * len(rows) + 2.0))
    ax = fig.add_subplot(1, 1, 1)
    ys = np.arange(len(rows))[::-1].astype(float)
    h = 0.38
    for y, r in zip(ys, rows):
        mean = 100 * r["map_voc07_mean"]
        interval = r.get("map_voc07_interval")
        err = None if interval is None else [[mean - 100 * interval[0]], [100 * interval[1] - mean]]
        ax.barh(y + h / 2, mean, h, color="tab:blue", xerr=err, capsize=3,
                label="test split (95% interval)" if y == ys[0] else None)
        ax.plot([100 * v for v in r["map_voc07"]], [y + h / 2] * len(r["map_voc07"]), "k.", markersize=4)
        if r["train_map_voc07_mean"] is not None:
            ax.barh(y - h / 2, 100 * r["train_map_voc07_mean"], h, color="tab:orange",
                    label="training subset" if y == ys[0] else None)
            ax.plot([100 * v for v in r["train_map_voc07"]], [y - h / 2] * len(r["train_map_voc07"]), "k.",
                    markersize=4)
        label = f"{mean:.1f}%"
        if r.get("ratio_to_reference") is not None:
            label += f" ({r['ratio_to_reference']:.2f}x)"
        ax.text(mean + 1.0, y + h / 2, label, va="center", fontsize=7)
    ax.set_yticks(ys)
    ax.set_yticklabels([r["run"] for r in rows], fontsize=8)
    ax.set_xlabel("VOC2007 mAP (11-point, %); points: single seeds")
    ax.set_xlim(0, 110)
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return atomic_save_figure(fig, out)


def write(stats: dict[str, Any], out: Path, title: str = "") -> None:
    """``stats.json``, ``stats.md`` and ``stats.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "stats.json", json.dumps(stats, indent=2))
    atomic_write_text(out / "stats.md", markdown(stats, title))
    plot(stats, out / "stats.png", title)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", nargs="+", help="run folders of bench_quality, each FOLDER[:LABEL]")
    parser.add_argument("--reference", default=None, help="row whose mAP the ratios divide by (e.g. the ANN twin)")
    parser.add_argument("--compare", default=None, help="row the paired differences subtract")
    parser.add_argument("--replicates", type=int, default=BOOTSTRAP, help=f"bootstrap replicates (default {BOOTSTRAP})")
    parser.add_argument("--title", default="")
    parser.add_argument("--out", type=Path, required=True, help="folder for stats.json, stats.md, stats.png")
    parser.add_argument("--force", action="store_true", help="replace the stats files an earlier call left in --out")
    args = parser.parse_args(argv)
    try:
        earlier = [n for n in ("stats.json", "stats.md", "stats.png") if (args.out / n).exists()]
        if earlier and not args.force:
            raise StatsInputError(f"{args.out} already holds {', '.join(earlier)}; choose another --out "
                                  "(or --force to replace them)")
        rows = [load_row(spec) for spec in args.rows]
        names = [r.name for r in rows]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise StatsInputError(f"rows named twice: {', '.join(sorted(dup))} (label them FOLDER:LABEL)")
        stats = statistics(rows, args.reference, args.compare, args.replicates)
        write(stats, args.out, args.title)
    except StatsInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown(stats, args.title))
    print(f"wrote {args.out / 'stats.json'}, stats.md and stats.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
