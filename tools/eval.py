#!/usr/bin/env python
"""Evaluate object detections with the exact PASCAL VOC protocol.

Text mode: ground truth and detections as one text file per image::

    python tools/eval.py --gt-dir GT_DIR --det-dir DET_DIR \
        [--classes FILE] [--iou 0.5] [--json PATH] [--plots DIR] [--coco]

GT lines are ``class x1 y1 x2 y2 [difficult]``, detection lines are
``class score x1 y1 x2 y2`` (VOC pixels, 1-based inclusive). The table shows
both VOC2007 11-point and area (VOC2010+) AP. Exit status 0 on success, 2 on
bad input (the message names the file and line).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from spyolo.eval.report import format_ap_table, write_json  # noqa: E402
from spyolo.eval.textfiles import (  # noqa: E402
    evaluator_from_text,
    load_text_results,
    read_class_file,
)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (shared by all evaluation modes)."""
    parser = argparse.ArgumentParser(
        description="Exact PASCAL VOC evaluation (VOC2007 11-point and area/VOC2010+ mAP).",
    )
    text = parser.add_argument_group("text mode (one .txt file per image)")
    text.add_argument("--gt-dir", type=Path, help="folder of <image_id>.txt ground-truth files "
                      "with lines 'class x1 y1 x2 y2 [difficult]'")
    text.add_argument("--det-dir", type=Path, help="folder of <image_id>.txt detection files "
                      "with lines 'class score x1 y1 x2 y2'")
    text.add_argument("--classes", type=Path, default=None,
                      help="class list file, one name per line (default: sorted GT class names)")
    out = parser.add_argument_group("options and outputs")
    out.add_argument("--iou", type=float, default=0.5,
                     help="IoU threshold, inclusive, '+1 pixel' convention (default 0.5)")
    out.add_argument("--json", type=Path, default=None,
                     help="write map_voc07, map_area, ap_voc07, ap_area (fractions) to this file")
    out.add_argument("--plots", type=Path, default=None,
                     help="write precision-recall PNGs (one per class + a summary) to this folder")
    out.add_argument("--coco", action="store_true",
                     help="also compute COCO-style AP@[.5:.95] and AP@.5 with pycocotools")
    return parser


def run_text_mode(args: argparse.Namespace) -> int:
    """Evaluate text-file results; print the table; write optional outputs."""
    if not (0.0 < args.iou <= 1.0):
        raise ValueError(f"--iou must be in (0, 1]; got {args.iou}")
    class_names = read_class_file(args.classes) if args.classes is not None else None
    data = load_text_results(args.gt_dir, args.det_dir, class_names)
    for msg in data.warnings:
        print(f"warning: {msg}", file=sys.stderr)
    ev = evaluator_from_text(data, iou_threshold=args.iou)
    res = ev.compute()
    extra = {}
    if args.coco:
        res["coco"] = ev.compute_coco()
        extra["coco"] = res["coco"]
    print(format_ap_table(res))
    if args.json is not None:
        write_json(res, args.json, extra=extra or None)
        print(f"wrote {args.json}")
    if args.plots is not None:
        from spyolo.eval.plots import plot_pr_curves  # matplotlib only when asked

        paths = plot_pr_curves(res, args.plots)
        print(f"wrote {len(paths)} plots to {args.plots}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, dispatch to the evaluation mode, map input errors to exit 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.gt_dir is None or args.det_dir is None:
        parser.error("text mode needs both --gt-dir and --det-dir")
    try:
        return run_text_mode(args)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
