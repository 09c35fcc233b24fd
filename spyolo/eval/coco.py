"""COCO-style mAP (AP@[.5:.95] and AP@.5) computed by pycocotools.

The data are converted to pycocotools' own structures (a ``COCO`` ground-truth
object built from a dataset dict, ``loadRes`` for the detections and
``COCOeval`` with ``iouType="bbox"``); the numbers are pycocotools' numbers.

Conversions and how they differ from the VOC protocol:

* Boxes: VOC boxes are 1-based inclusive ``x1, y1, x2, y2``; COCO boxes are
  ``[x, y, w, h]``. We use ``w = x2 - x1 + 1`` and ``h = y2 - y1 + 1``, so that
  COCO's IoU (which has no "+1") equals the VOC "+1 pixel" IoU. Ground-truth
  ``area`` is ``w * h``.
* Difficult objects become ``iscrowd=1``, which is COCO's only way to ignore a
  ground-truth box. COCO treats crowd boxes differently from VOC's difficult
  boxes: a detection is matched to a crowd box only when no regular box is
  available, the overlap with a crowd box is intersection / detection area
  (not IoU), and any number of detections may fall on the same crowd box
  (all ignored). VOC instead ignores a detection whenever its single best-IoU
  box is difficult.
* COCO interpolates precision at 101 recall points, averages over IoU
  thresholds 0.50:0.05:0.95, and keeps at most ``max_dets`` detections per
  image (COCO's default 100; VOC has no such limit).

So these figures are *not* VOC mAPs and must not be compared with them.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from spyolo.errors import DatasetError

__all__ = ["coco_map", "coco_map_with_file"]


def _arr(value: Any, dtype: Any) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def coco_map(
    class_names: Sequence[str],
    gts: Mapping[Hashable, Mapping[str, Any]],
    dets: Mapping[Hashable, Mapping[str, Any]],
    verbose: bool = False,
    max_dets: int = 100,
) -> dict[str, Any]:
    """COCO-style mAP of VOC-format data.

    Args:
        class_names: class names; label ``i`` is ``class_names[i]``.
        gts: ``{image_id: {"boxes": (N,4), "labels": (N,), "difficult": (N,)}}``
            (``difficult`` optional). Every evaluated image must appear here,
            possibly with no boxes.
        dets: ``{image_id: {"boxes": (M,4), "scores": (M,), "labels": (M,)}}``.
            Detections on images absent from ``gts`` are rejected (COCO cannot
            score them).
        verbose: let pycocotools print its progress and summary table.
        max_dets: maximum detections per image (COCO's default is 100).

    Returns:
        ``{"map_coco": AP@[.5:.95], "map50_coco": AP@.5, "map75_coco": AP@.75,
        "ap_coco": {class: AP@[.5:.95]}, "ap50_coco": {class: AP@.5},
        "max_dets": max_dets}``; fractions in ``[0, 1]``. Per-class values are
        given only for classes with at least one non-crowd ground-truth box.

    Raises:
        ValueError: no non-difficult ground truth, or detections on unknown images.
    """
    from pycocotools.coco import COCO

    names = list(class_names)
    image_ids = list(gts.keys())
    img_num = {iid: k + 1 for k, iid in enumerate(image_ids)}
    images = [{"id": img_num[iid], "file_name": str(iid)} for iid in image_ids]
    categories = [{"id": c + 1, "name": n} for c, n in enumerate(names)]

    annotations: list[dict[str, Any]] = []
    has_gt = np.zeros(len(names), dtype=bool)
    for iid, g in gts.items():
        boxes = _arr(g["boxes"], np.float64).reshape(-1, 4)
        labels = _arr(g["labels"], np.int64).reshape(-1)
        diff_in = g.get("difficult")
        diff = (np.zeros(len(labels), dtype=bool) if diff_in is None
                else _arr(diff_in, bool).reshape(-1))
        for box, lab, d in zip(boxes.tolist(), labels.tolist(), diff.tolist()):
            w = box[2] - box[0] + 1.0
            h = box[3] - box[1] + 1.0
            annotations.append({
                "id": len(annotations) + 1, "image_id": img_num[iid], "category_id": lab + 1,
                "bbox": [box[0], box[1], w, h], "area": w * h, "iscrowd": int(bool(d)),
            })
            if not d:
                has_gt[lab] = True
    if not has_gt.any():
        raise DatasetError("cannot compute COCO mAP: no non-difficult ground-truth object")

    results: list[dict[str, Any]] = []
    for iid, d in dets.items():
        if iid not in img_num:
            raise ValueError(f"detections for image {iid!r}, which has no ground-truth entry")
        boxes = _arr(d["boxes"], np.float64).reshape(-1, 4)
        scores = _arr(d["scores"], np.float64).reshape(-1)
        labels = _arr(d["labels"], np.int64).reshape(-1)
        for box, s, lab in zip(boxes.tolist(), scores.tolist(), labels.tolist()):
            results.append({
                "image_id": img_num[iid], "category_id": lab + 1, "score": s,
                "bbox": [box[0], box[1], box[2] - box[0] + 1.0, box[3] - box[1] + 1.0],
            })

    coco_gt = COCO()
    coco_gt.dataset = {"images": images, "annotations": annotations, "categories": categories}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
    return _cocoeval(coco_gt, results, [img_num[iid] for iid in image_ids], verbose, max_dets)


def coco_map_with_file(
    coco_gt: Any,
    results: Sequence[Mapping[str, Any]],
    image_ids: Sequence[int],
    verbose: bool = False,
    max_dets: int = 100,
) -> dict[str, Any]:
    """COCO mAP against a dataset's own COCO file, with its own image and category ids.

    Args:
        coco_gt: the file's ``pycocotools.coco.COCO`` object
            (:attr:`spyolo.data.coco.COCOFile.coco`).
        results: detections in COCO's result format: ``{"image_id", "category_id", "bbox":
            [x, y, w, h], "score"}`` (continuous pixels of the original image).
        image_ids: the file's ids of the images evaluated (a subset is scored as such).
        verbose, max_dets: as :func:`coco_map`.

    Returns:
        As :func:`coco_map`, per-class values keyed by the categories' names.
    """
    return _cocoeval(coco_gt, list(results), list(image_ids), verbose, max_dets)


def _cocoeval(coco_gt: Any, results: list[dict[str, Any]], image_ids: list[int], verbose: bool,
              max_dets: int) -> dict[str, Any]:
    """Run ``COCOeval`` (bbox) on ``image_ids`` and read AP@[.5:.95], AP@.5, AP@.75 and per-class APs."""
    from pycocotools.cocoeval import COCOeval

    cat_ids = sorted(coco_gt.cats)
    names = {c: str(coco_gt.cats[c]["name"]) for c in cat_ids}
    wanted = set(image_ids)
    has_gt = {c: False for c in cat_ids}
    for ann in coco_gt.dataset.get("annotations", []):
        if ann["image_id"] in wanted and not ann.get("iscrowd", 0) and ann["category_id"] in has_gt:
            has_gt[ann["category_id"]] = True
    if not any(has_gt.values()):
        raise DatasetError("cannot compute COCO mAP: no non-crowd ground-truth object")
    ap_classes = [names[c] for c in cat_ids if has_gt[c]]
    if not results:
        zeros = {n: 0.0 for n in ap_classes}
        return {"map_coco": 0.0, "map50_coco": 0.0, "map75_coco": 0.0,
                "ap_coco": zeros, "ap50_coco": dict(zeros), "max_dets": max_dets}

    sink = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with sink:
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.params.imgIds = sorted(wanted)
        ev.params.catIds = cat_ids
        ev.params.maxDets = [1, 10, int(max_dets)]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()

    # precision: [T iou thresholds, R recall points, K classes, A area ranges, M maxDets]
    prec = ev.eval["precision"][:, :, :, 0, -1]
    iou_thrs = ev.params.iouThrs
    t50 = int(np.argmin(np.abs(iou_thrs - 0.5)))
    t75 = int(np.argmin(np.abs(iou_thrs - 0.75)))
    ap: dict[str, float] = {}
    ap50: dict[str, float] = {}
    for k, c in enumerate(cat_ids):
        if not has_gt[c]:
            continue
        p = prec[:, :, k]
        ap[names[c]] = float(np.mean(p[p > -1])) if np.any(p > -1) else 0.0
        p50 = prec[t50, :, k]
        ap50[names[c]] = float(np.mean(p50[p50 > -1])) if np.any(p50 > -1) else 0.0

    def _stat(sel: np.ndarray) -> float:
        valid = sel[sel > -1]
        return float(np.mean(valid)) if valid.size else 0.0

    return {
        "map_coco": _stat(prec),
        "map50_coco": _stat(prec[t50]),
        "map75_coco": _stat(prec[t75]),
        "ap_coco": ap,
        "ap50_coco": ap50,
        "max_dets": int(max_dets),
    }
