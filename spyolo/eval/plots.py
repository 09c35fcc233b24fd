"""Precision-recall curve plots of a :meth:`VOCEvaluator.compute` result.

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
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["plot_pr_curves"]


def _safe_name(name: str) -> str:
    """File-name-safe version of a class name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "class"


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)


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
