"""Plots: precision-recall curves of a :meth:`VOCEvaluator.compute` result, training curves.

Figures are built with matplotlib's object API on the Agg canvas (no pyplot
state, no display needed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from spyolo.utils.io import atomic_save_figure

__all__ = ["plot_pr_curves", "plot_results", "plot_training_curves"]


def _safe_name(name: str) -> str:
    """File-name-safe version of a class name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "class"


def _save(fig: Figure, path: Path) -> None:
    atomic_save_figure(fig, path)


def _style(ax: Any) -> None:
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(True, alpha=0.3)


def plot_pr_curves(res: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """Write one precision-recall PNG per class and one summary PNG.

    Args:
        res: result of :meth:`spyolo.eval.voc.VOCEvaluator.compute` (uses
            ``curves``, ``ap_voc07``, ``ap_area``, ``map_voc07``, ``map_area``
            and ``iou_threshold``).
        out_dir: output folder (created if needed).

    Returns:
        The written paths: ``pr_<class>.png`` for each class with ground truth
        (class names made file-name safe), then ``all_classes_pr.png``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    curves: Mapping[str, Mapping[str, np.ndarray]] = res["curves"]
    iou = float(res["iou_threshold"])
    written: list[Path] = []
    used: set[str] = set()
    for name, curve in curves.items():
        fname = _safe_name(name)
        while fname in used:
            fname += "_"
        used.add(fname)
        fig = Figure(figsize=(5, 4.5))
        ax = fig.add_subplot(1, 1, 1)
        ax.plot(curve["recall"], curve["precision"], lw=1.5)
        _style(ax)
        ax.set_title(
            f"{name}: AP {100 * res['ap_area'][name]:.2f}% (area), "
            f"{100 * res['ap_voc07'][name]:.2f}% (VOC07 11-pt)\nIoU >= {iou:g}",
            fontsize=9,
        )
        fig.tight_layout()
        path = out / f"pr_{fname}.png"
        _save(fig, path)
        written.append(path)

    fig = Figure(figsize=(9, 7))
    ax = fig.add_subplot(1, 1, 1)
    cmap = matplotlib.colormaps["tab20"]
    for k, (name, curve) in enumerate(curves.items()):
        ax.plot(curve["recall"], curve["precision"], lw=1.0, color=cmap(k % 20),
                linestyle="-" if k < 20 else "--",
                label=f"{name} {100 * res['ap_area'][name]:.1f}")
    _style(ax)
    ax.set_title(
        f"All classes (AP area %): mAP {100 * res['map_area']:.2f}% area (VOC2010+), "
        f"{100 * res['map_voc07']:.2f}% VOC2007 11-point, IoU >= {iou:g}",
        fontsize=9,
    )
    if curves:
        ax.legend(fontsize=7, ncol=2, loc="lower left")
    fig.tight_layout()
    path = out / "all_classes_pr.png"
    _save(fig, path)
    written.append(path)
    return written


def plot_training_curves(runs: Mapping[str, str | Path], path: str | Path,
                         columns: tuple[str, ...] = ("loss", "box", "obj", "cls"), title: str = "") -> Path:
    """One PNG with a panel per column of the runs' ``results.csv`` against the epoch.

    Args:
        runs: label -> run folder (holding ``results.csv``, as written by ``tools/train.py``).
        path: output PNG (its folder is created if needed).
        columns: ``results.csv`` columns to draw, one panel each (missing ones are skipped).
        title: figure title.

    Raises:
        FileNotFoundError: a run folder without ``results.csv``.
    """
    import csv

    series: dict[str, dict[str, list[float]]] = {}
    for label, folder in runs.items():
        csv_path = Path(folder) / "results.csv"
        if not csv_path.is_file():
            raise FileNotFoundError(f"{csv_path}: results.csv not found (is {folder} a tools/train.py run folder?)")
        with csv_path.open() as f:
            rows = list(csv.DictReader(f))
        series[label] = {k: [float(r[k]) for r in rows] for k in ("epoch", *columns) if rows and k in rows[0]}
    shown = [c for c in columns if any(c in s for s in series.values())]
    fig = Figure(figsize=(4.2 * max(1, len(shown)), 3.6))
    for i, col in enumerate(shown):
        ax = fig.add_subplot(1, len(shown), i + 1)
        for label, s in series.items():
            if col in s:
                ax.plot(s["epoch"], s[col], marker=".", label=label)
        ax.set_xlabel("epoch")
        ax.set_title(col if col != "loss" else "training loss (total)")
        ax.grid(True, alpha=0.3)
        if i == 0:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    _save(fig, out)
    return out


RESULT_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("training loss (total)", ("loss",)),
    ("box loss", ("box",)),
    ("objectness loss", ("obj",)),
    ("class loss", ("cls",)),
    ("mAP (test split; training subset dashed)", ("map_voc07", "map_area", "train_map_voc07", "train_map_area")),
    ("mean firing rate", ("firing_rate",)),
)
"""Panels of :func:`plot_results`: title and the ``results.csv`` columns drawn in it."""


def plot_results(history: list[Mapping[str, Any]], path: str | Path, title: str = "") -> Path:
    """The run's ``results.png``: loss parts, mAP and firing rate against the epoch.

    Args:
        history: one dict per epoch with ``epoch`` and the columns of :data:`RESULT_PANELS`
            (non-finite values, e.g. the mAP of an epoch without evaluation, are skipped).
        path: output PNG, written atomically.
        title: figure title.
    """
    labels = {"map_voc07": "VOC2007 11-point", "map_area": "area (VOC2010+)",
              "train_map_voc07": "training subset, VOC2007", "train_map_area": "training subset, area"}
    fig = Figure(figsize=(12.6, 6.6))
    for i, (panel, columns) in enumerate(RESULT_PANELS):
        ax = fig.add_subplot(2, 3, i + 1)
        for col in columns:
            points = [(float(r["epoch"]), float(r[col])) for r in history
                      if col in r and r[col] is not None and np.isfinite(float(r[col]))]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker=".", label=labels.get(col, col),
                        linestyle="--" if col.startswith("train_") else "-")
        if len(columns) > 1 and ax.lines:
            ax.legend(fontsize=8)
        if not ax.lines:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes, color="grey")
        ax.set_title(panel)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    _save(fig, out)
    return out
