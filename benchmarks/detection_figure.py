#!/usr/bin/env python3
"""One picture of several detectors' detections on the same images, side by side.

    python -m benchmarks.detection_figure --weights runs/raccoon/ann/weights/last.pt \\
        --weights runs/raccoon/spyv4/weights/last.pt --label "ANN twin" --label "SPYv4 (T=2)" \\
        --images data/realdata/RACCOON/JPEGImages/raccoon-16{1,2,3,4}.jpg --out docs/results/raccoon_detections.jpg

Rows are images, columns are models (each cell titled with its label), every model run with its
checkpoint's own settings (``Detector.from_checkpoint``: input size, T, thresholds; ``--conf``
overrides the confidence threshold for all). The figure is written atomically; an ``--out`` that
names one of the inputs is refused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np


def titled(image: np.ndarray, title: str, cell: int) -> np.ndarray:
    """``image`` (BGR) scaled to ``cell`` pixels wide (aspect kept) with a title bar above it."""
    height, width = image.shape[:2]
    size = (cell, max(1, round(height * cell / width)))
    body = cv2.resize(image, size, interpolation=cv2.INTER_AREA if cell < width else cv2.INTER_LINEAR)
    bar = np.full((28, cell, 3), 255, np.uint8)
    cv2.putText(bar, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, body], axis=0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", action="append", required=True, type=Path, help="a checkpoint (repeat per column)")
    p.add_argument("--label", action="append", default=None, help="column title (repeat, in --weights order)")
    p.add_argument("--images", nargs="+", required=True, type=Path, help="the images (one row each)")
    p.add_argument("--out", required=True, type=Path, help="the figure (.jpg or .png)")
    p.add_argument("--conf", type=float, default=None, help="confidence threshold for every model")
    p.add_argument("--cell", type=int, default=320, help="width of one cell in pixels")
    args = p.parse_args(argv)
    from spyolo.errors import SpyoloError
    from spyolo.inference import Detector
    from spyolo.utils.io import atomic_write_image

    labels = args.label or [w.parent.parent.name for w in args.weights]
    if len(labels) != len(args.weights):
        print(f"error: {len(labels)} --label for {len(args.weights)} --weights", file=sys.stderr)
        return 2
    inputs = [*args.weights, *args.images]
    if any(args.out.exists() and i.exists() and args.out.resolve() == i.resolve() for i in inputs):
        print(f"error: {args.out}: the figure would replace an input", file=sys.stderr)
        return 2
    try:
        detectors = [Detector.from_checkpoint(w, device="cpu", conf=args.conf) for w in args.weights]
        rows = []
        for image in args.images:
            cells = [titled(det.predict(str(image))[0].plot(), f"{label}: {image.stem}", args.cell)
                     for det, label in zip(detectors, labels)]
            rows.append(np.concatenate(cells, axis=1))
        atomic_write_image(args.out, np.concatenate(rows, axis=0))
    except (SpyoloError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
