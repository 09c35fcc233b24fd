"""Exact PASCAL VOC detection evaluation (VOC2007 11-point and VOC2010+ area AP).

The protocol follows the official VOC development kit:

* per class, ``npos`` is the number of *non-difficult* ground-truth objects;
* the class's detections are sorted by descending score with a **stable** sort,
  so detections with tied scores keep the order in which they were added;
* each detection is compared with the ground-truth boxes of its class in its
  image and takes the one with the highest IoU (the first such box on ties).
  IoU uses the VOC "+1 pixel" convention: a box ``x1, y1, x2, y2`` is
  ``x2 - x1 + 1`` pixels wide, and the intersection width is
  ``max(0, min(x2) - max(x1) + 1)``;
* if that best IoU is ``>= iou_threshold`` (inclusive): a difficult box makes
  the detection *ignored* (neither TP nor FP); a box not matched yet makes it a
  TP (and the box becomes matched); an already matched box makes it an FP
  (duplicate; there is no fall-back to the next best box). Otherwise, and also
  when the image has no box of that class or no ground truth at all, it is an FP;
* ``recall = cumTP / npos`` and ``precision = cumTP / max(cumTP + cumFP, eps)``.

Two AP definitions are computed from the same matching:

* ``"voc07"`` (11-point): mean over the 11 thresholds ``np.arange(0.0, 1.1, 0.1)``
  of the maximum precision at ``recall >= t`` (0 when no recall reaches ``t``).
  These are the devkit's float values: the 4th, 7th and 8th are
  ``0.30000000000000004``, ``0.6000000000000001`` and ``0.7000000000000001``, so
  a recall of exactly ``3/10`` does **not** reach the 0.3 threshold. This is
  reproduced on purpose, to give the same numbers as the devkit.
* ``"area"`` (VOC2010+, all-point): the precision envelope (made non-increasing
  from the right) integrated over the points where recall changes, with the
  devkit's sentinels (recall 0 / precision 0 at the start, recall 1 /
  precision 0 at the end).

The mAP is the mean AP over the classes that have at least one non-difficult
ground-truth object; the other classes are listed in ``classes_without_gt``
and are never part of any mean (no NaN is produced). A class with ground truth
but no detection has AP 0.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from spyolo.utils.choices import EVAL_METRICS

__all__ = ["VOCEvaluator", "area_ap", "box_iou_voc", "map_of_images", "voc07_ap"]



def _to_numpy(value: Any, name: str) -> np.ndarray:
    """Convert a numpy array, torch tensor (any device), list or scalar to numpy."""
    if value is None:
        raise ValueError(f"{name} must not be None")
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged lists and the like
        raise ValueError(f"{name} cannot be converted to an array: {exc}") from exc


def _as_boxes(value: Any, name: str) -> np.ndarray:
    arr = _to_numpy(value, name)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) as x1, y1, x2, y2; got {arr.shape}")
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be numeric; got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite coordinates")
    bad = np.nonzero((arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1]))[0]
    if bad.size:
        raise ValueError(
            f"{name}: box {int(bad[0])} {arr[bad[0]].tolist()} has x2 < x1 or y2 < y1 "
            f"({bad.size} such boxes)"
        )
    return arr


def _as_vector(value: Any, name: str, n: int) -> np.ndarray:
    arr = _to_numpy(value, name)
    if arr.size == 0 and n == 0:
        return arr.reshape(0)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) to match the boxes; got {arr.shape}")
    return arr


def _as_labels(value: Any, name: str, n: int, num_classes: int) -> np.ndarray:
    arr = _as_vector(value, name, n)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be integer class indices; got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must be integer class indices; got non-integral values")
    labels = arr.astype(np.int64)
    bad = np.nonzero((labels < 0) | (labels >= num_classes))[0]
    if bad.size:
        raise ValueError(
            f"{name}: label {int(labels[bad[0]])} is outside [0, {num_classes}) "
            f"({bad.size} such labels)"
        )
    return labels


def box_iou_voc(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box against many with the VOC "+1 pixel" convention.

    Args:
        box: array ``(4,)`` as ``x1, y1, x2, y2`` (inclusive pixel coordinates).
        boxes: array ``(M, 4)`` in the same format.

    Returns:
        Array ``(M,)`` of IoU values, computed in the devkit's operation order.
    """
    box = np.asarray(box, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return _iou_pairs(np.broadcast_to(box, boxes.shape), boxes)


def _iou_pairs(det: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Row-wise IoU of ``det[i]`` with ``gt[i]`` (+1 convention, devkit op order)."""
    ixmin = np.maximum(gt[:, 0], det[:, 0])
    iymin = np.maximum(gt[:, 1], det[:, 1])
    ixmax = np.minimum(gt[:, 2], det[:, 2])
    iymax = np.minimum(gt[:, 3], det[:, 3])
    iw = np.maximum(ixmax - ixmin + 1.0, 0.0)
    ih = np.maximum(iymax - iymin + 1.0, 0.0)
    inters = iw * ih
    uni = (
        (det[:, 2] - det[:, 0] + 1.0) * (det[:, 3] - det[:, 1] + 1.0)
        + (gt[:, 2] - gt[:, 0] + 1.0) * (gt[:, 3] - gt[:, 1] + 1.0)
        - inters
    )
    return inters / uni


def voc07_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2007 11-point AP with the devkit's thresholds ``np.arange(0.0, 1.1, 0.1)``.

    The thresholds are the float values numpy produces (for example
    ``0.30000000000000004``), exactly as in the devkit. The 11 terms are summed
    exactly (:func:`math.fsum`) and then divided by 11, so that 11 terms of 1
    give exactly 1.0 (the devkit's running ``ap += p / 11`` gives
    1.0000000000000002); the two differ by float rounding only.
    """
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    terms = []
    for t in np.arange(0.0, 1.1, 0.1):
        mask = recall >= t
        terms.append(float(np.max(precision[mask])) if np.any(mask) else 0.0)
    return math.fsum(terms) / 11.0


def area_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2010+ AP: area under the monotone precision envelope (devkit sentinels).

    The terms are summed exactly (:func:`math.fsum`); the result equals the
    devkit's up to float rounding and is clipped to ``[0, 1]`` against ulp-level
    rounding only.
    """
    mrec = np.concatenate(([0.0], np.asarray(recall, dtype=np.float64), [1.0]))
    mpre = np.concatenate(([0.0], np.asarray(precision, dtype=np.float64), [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0]
    ap = math.fsum(((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]).tolist())
    # the exact value is in [0, 1]; clipping only absorbs float rounding (ulps)
    return min(max(ap, 0.0), 1.0)


class VOCEvaluator:
    """Accumulates ground truth and detections per image and computes VOC AP/mAP.

    Example::

        ev = VOCEvaluator(class_names, iou_threshold=0.5, metric="voc07")
        ev.add_ground_truth(image_id, boxes, labels, difficult)
        ev.add_detections(image_id, boxes, scores, labels)
        res = ev.compute()  # res["map"], res["ap"], res["map_area"], ...

    Boxes are ``(N, 4)`` arrays of ``x1, y1, x2, y2`` in VOC pixel coordinates
    (inclusive). Inputs may be numpy arrays, torch tensors (any device), lists,
    or empty. Image ids are any hashable values (``"000001"`` and ``1`` are
    different images). Several calls for the same image id append.

    Args:
        class_names: the class names; label ``i`` refers to ``class_names[i]``.
        iou_threshold: minimum IoU (inclusive) for a match, in ``(0, 1]``.
        metric: ``"voc07"`` (11-point) or ``"area"`` (VOC2010+); selects which
            metric ``res["map"]`` / ``res["ap"]`` report. Both are always
            computed and returned as ``map_voc07``/``ap_voc07`` and
            ``map_area``/``ap_area``.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        iou_threshold: float = 0.5,
        metric: str = "voc07",
    ) -> None:
        names = [str(n) for n in class_names]
        if not names:
            raise ValueError("class_names must not be empty")
        if len(set(names)) != len(names):
            raise ValueError(f"class_names contains duplicates: {names}")
        if metric not in EVAL_METRICS:
            raise ValueError(f"metric must be one of {EVAL_METRICS}; got {metric!r}")
        if not (0.0 < float(iou_threshold) <= 1.0):
            raise ValueError(f"iou_threshold must be in (0, 1]; got {iou_threshold}")
        self.class_names: list[str] = names
        self.iou_threshold: float = float(iou_threshold)
        self.metric: str = metric
        self._image_index: dict[Hashable, int] = {}
        self._image_ids: list[Hashable] = []
        self._images_with_gt: set[int] = set()
        self._gt_img: list[np.ndarray] = []
        self._gt_boxes: list[np.ndarray] = []
        self._gt_labels: list[np.ndarray] = []
        self._gt_difficult: list[np.ndarray] = []
        self._det_img: list[np.ndarray] = []
        self._det_boxes: list[np.ndarray] = []
        self._det_scores: list[np.ndarray] = []
        self._det_labels: list[np.ndarray] = []

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def reset(self) -> None:
        """Forget all accumulated ground truth and detections."""
        self._image_index.clear()
        self._image_ids.clear()
        self._images_with_gt.clear()
        for store in (
            self._gt_img, self._gt_boxes, self._gt_labels, self._gt_difficult,
            self._det_img, self._det_boxes, self._det_scores, self._det_labels,
        ):
            store.clear()

    def _index_of(self, image_id: Hashable) -> int:
        try:
            hash(image_id)
        except TypeError as exc:
            raise ValueError(f"image_id must be hashable; got {type(image_id).__name__}") from exc
        idx = self._image_index.get(image_id)
        if idx is None:
            idx = len(self._image_ids)
            self._image_index[image_id] = idx
            self._image_ids.append(image_id)
        return idx

    def add_ground_truth(
        self,
        image_id: Hashable,
        boxes: Any,
        labels: Any,
        difficult: Any | None = None,
    ) -> None:
        """Add the ground-truth objects of one image (may be empty).

        Args:
            image_id: hashable image identifier.
            boxes: ``(N, 4)`` boxes ``x1, y1, x2, y2`` (VOC pixels, inclusive).
            labels: ``(N,)`` integer class indices.
            difficult: ``(N,)`` booleans (or 0/1); ``None`` means none difficult.
        """
        where = f"ground truth of image {image_id!r}"
        b = _as_boxes(boxes, f"{where}: boxes")
        n = b.shape[0]
        lab = _as_labels(labels, f"{where}: labels", n, self.num_classes)
        if difficult is None:
            diff = np.zeros(n, dtype=bool)
        else:
            d = _as_vector(difficult, f"{where}: difficult", n)
            if n and d.dtype.kind != "b":
                if d.dtype.kind not in "iuf" or not np.all((d == 0) | (d == 1)):
                    raise ValueError(f"{where}: difficult must be booleans or 0/1 values")
            diff = d.astype(bool).reshape(n)
        idx = self._index_of(image_id)
        self._images_with_gt.add(idx)
        if n:
            self._gt_img.append(np.full(n, idx, dtype=np.int64))
            self._gt_boxes.append(b)
            self._gt_labels.append(lab)
            self._gt_difficult.append(diff)

    def add_detections(self, image_id: Hashable, boxes: Any, scores: Any, labels: Any) -> None:
        """Add the detections of one image (may be empty).

        Args:
            image_id: hashable image identifier.
            boxes: ``(N, 4)`` boxes ``x1, y1, x2, y2`` (VOC pixels, inclusive).
            scores: ``(N,)`` confidence scores (higher is more confident).
            labels: ``(N,)`` integer class indices.
        """
        where = f"detections of image {image_id!r}"
        b = _as_boxes(boxes, f"{where}: boxes")
        n = b.shape[0]
        s = _as_vector(scores, f"{where}: scores", n)
        if n:
            if s.dtype.kind not in "iuf":
                raise ValueError(f"{where}: scores must be numeric; got dtype {s.dtype}")
            s = s.astype(np.float64)
            if not np.all(np.isfinite(s)):
                raise ValueError(f"{where}: scores contain non-finite values")
        lab = _as_labels(labels, f"{where}: labels", n, self.num_classes)
        idx = self._index_of(image_id)
        if n:
            self._det_img.append(np.full(n, idx, dtype=np.int64))
            self._det_boxes.append(b)
            self._det_scores.append(s.astype(np.float64))
            self._det_labels.append(lab)

    # ------------------------------------------------------------------ data access
    def ground_truth_arrays(self) -> dict[str, np.ndarray]:
        """All ground truth, concatenated in insertion order.

        Returns a dict with ``image`` (image index), ``boxes``, ``labels`` and
        ``difficult``; :attr:`image_ids` maps an image index to its id.
        """
        return {
            "image": _cat(self._gt_img, np.int64, (0,)),
            "boxes": _cat(self._gt_boxes, np.float64, (0, 4)),
            "labels": _cat(self._gt_labels, np.int64, (0,)),
            "difficult": _cat(self._gt_difficult, bool, (0,)),
        }

    def detection_arrays(self) -> dict[str, np.ndarray]:
        """All detections, concatenated in insertion order (``image``, ``boxes``,
        ``scores``, ``labels``)."""
        return {
            "image": _cat(self._det_img, np.int64, (0,)),
            "boxes": _cat(self._det_boxes, np.float64, (0, 4)),
            "scores": _cat(self._det_scores, np.float64, (0,)),
            "labels": _cat(self._det_labels, np.int64, (0,)),
        }

    @property
    def image_ids(self) -> list[Hashable]:
        """Image ids in the order they were first seen (index -> id)."""
        return list(self._image_ids)

    # ------------------------------------------------------------------ evaluation
    def compute(self) -> dict[str, Any]:
        """Match detections to ground truth and compute both AP metrics.

        Returns:
            A dict with

            * ``map``, ``ap``: mAP and per-class AP of the selected ``metric``;
            * ``map_voc07``, ``ap_voc07``, ``map_area``, ``ap_area``: both metrics;
            * ``metric``, ``iou_threshold``;
            * ``classes_without_gt``: classes with no non-difficult ground
              truth (absent from every ``ap*`` dict and from the means);
            * ``npos``, ``num_detections``, ``tp``, ``fp``, ``ignored``:
              per-class counts (all classes);
            * ``curves``: ``{class: {"recall": array, "precision": array}}`` for
              the classes with ground truth, in descending-score order;
            * ``num_images`` and ``num_detections_without_gt_image`` (detections
              on images for which no ground truth was ever added; they are FPs).

            AP values and mAPs are fractions in ``[0, 1]``.

        Raises:
            ValueError: if no class has a non-difficult ground-truth object.
        """
        gt = self.ground_truth_arrays()
        det = self.detection_arrays()
        return self._compute_arrays(gt, det)

    def records(self) -> dict[str, Any]:
        """Everything :meth:`compute` scores, as plain arrays: ``image_ids`` (index -> id),
        ``gt_*`` and ``det_*`` (:meth:`ground_truth_arrays`, :meth:`detection_arrays`), the class
        names and the IoU threshold. :func:`map_of_images` scores any resample of the images."""
        gt, det = self.ground_truth_arrays(), self.detection_arrays()
        return {
            "class_names": list(self.class_names), "iou_threshold": self.iou_threshold,
            "image_ids": [str(i) for i in self._image_ids],
            **{f"gt_{k}": v for k, v in gt.items()}, **{f"det_{k}": v for k, v in det.items()},
        }

    def _compute_arrays(self, gt: dict[str, np.ndarray], det: dict[str, np.ndarray]) -> dict[str, Any]:
        res_ap07: dict[str, float] = {}
        res_area: dict[str, float] = {}
        npos_d: dict[str, int] = {}
        ndet_d: dict[str, int] = {}
        tp_d: dict[str, int] = {}
        fp_d: dict[str, int] = {}
        ign_d: dict[str, int] = {}
        curves: dict[str, dict[str, np.ndarray]] = {}
        without_gt: list[str] = []

        for c, name in enumerate(self.class_names):
            gmask = gt["labels"] == c
            g_img = gt["image"][gmask]
            g_box = gt["boxes"][gmask]
            g_diff = gt["difficult"][gmask]
            npos = int(np.count_nonzero(~g_diff))
            dmask = det["labels"] == c
            tp, fp = _match_class(
                det["image"][dmask], det["boxes"][dmask], det["scores"][dmask],
                g_img, g_box, g_diff, self.iou_threshold,
            )
            npos_d[name] = npos
            ndet_d[name] = int(tp.size)
            tp_d[name] = int(tp.sum())
            fp_d[name] = int(fp.sum())
            ign_d[name] = int(tp.size - tp.sum() - fp.sum())
            if npos == 0:
                without_gt.append(name)
                continue
            ctp = np.cumsum(tp, dtype=np.float64)
            cfp = np.cumsum(fp, dtype=np.float64)
            rec = ctp / float(npos)
            prec = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
            res_ap07[name] = voc07_ap(rec, prec)
            res_area[name] = area_ap(rec, prec)
            curves[name] = {"recall": rec, "precision": prec}

        if not res_ap07:
            raise ValueError(
                "cannot compute mAP: no class has a non-difficult ground-truth object "
                f"({len(self._image_ids)} images seen)"
            )
        map07 = float(np.mean(list(res_ap07.values())))
        map_area = float(np.mean(list(res_area.values())))
        unknown = 0
        if det["image"].size:
            has_gt = np.zeros(len(self._image_ids), dtype=bool)
            has_gt[list(self._images_with_gt)] = True
            unknown = int(np.count_nonzero(~has_gt[det["image"]]))
        selected_ap = res_ap07 if self.metric == "voc07" else res_area
        return {
            "metric": self.metric,
            "iou_threshold": self.iou_threshold,
            "map": map07 if self.metric == "voc07" else map_area,
            "ap": dict(selected_ap),
            "map_voc07": map07,
            "map_area": map_area,
            "ap_voc07": res_ap07,
            "ap_area": res_area,
            "classes_without_gt": without_gt,
            "npos": npos_d,
            "num_detections": ndet_d,
            "tp": tp_d,
            "fp": fp_d,
            "ignored": ign_d,
            "curves": curves,
            "num_images": len(self._image_ids),
            "num_detections_without_gt_image": unknown,
        }

    def compute_coco(self, verbose: bool = False, max_dets: int = 100) -> dict[str, Any]:
        """COCO-style mAP@[.5:.95] and mAP@.5 of the stored data via pycocotools.

        See :func:`spyolo.eval.coco.coco_map` for the conversion and how the
        COCO conventions differ from VOC's (difficult objects become crowd).
        Images that only received detections are passed as images without
        objects, so their detections are false positives, as in :meth:`compute`.
        """
        from spyolo.eval.coco import coco_map  # local: pycocotools only when asked

        n_img = len(self._image_ids)
        gt_parts = _split_by_image(self.ground_truth_arrays(), n_img)
        det_parts = _split_by_image(self.detection_arrays(), n_img)
        # every image is a COCO image; those never given GT have no objects
        gts = {self._image_ids[i]: gt_parts[i] for i in range(n_img)}
        dets = {self._image_ids[i]: det_parts[i] for i in range(n_img)
                if det_parts[i]["labels"].size}
        return coco_map(self.class_names, gts, dets, verbose=verbose, max_dets=max_dets)


def map_of_images(records: Mapping[str, Any], images: Sequence[int] | np.ndarray) -> tuple[float, float]:
    """``(VOC2007 11-point mAP, area mAP)`` of the images at ``images`` (indices into
    ``records["image_ids"]``, repeats allowed: a bootstrap resample) of :meth:`VOCEvaluator.records`.

    Each occurrence of an image counts as a separate image (its objects and detections repeated),
    so the full index list ``range(n)`` gives exactly :meth:`VOCEvaluator.compute`'s values.
    """
    images = np.asarray(images, dtype=np.int64)
    n = len(records["image_ids"])
    gt_rows = _rows_of(np.asarray(records["gt_image"]), n)
    det_rows = _rows_of(np.asarray(records["det_image"]), n)
    gt_sel = [gt_rows[i] for i in images]
    det_sel = [det_rows[i] for i in images]
    new_gt = np.repeat(np.arange(len(images)), [r.size for r in gt_sel])
    new_det = np.repeat(np.arange(len(images)), [r.size for r in det_sel])
    gi = np.concatenate(gt_sel) if gt_sel else np.zeros(0, np.int64)
    di = np.concatenate(det_sel) if det_sel else np.zeros(0, np.int64)
    gt = {"image": new_gt, "boxes": np.asarray(records["gt_boxes"])[gi], "labels": np.asarray(records["gt_labels"])[gi],
          "difficult": np.asarray(records["gt_difficult"])[gi]}
    det = {"image": new_det, "boxes": np.asarray(records["det_boxes"])[di],
           "scores": np.asarray(records["det_scores"])[di], "labels": np.asarray(records["det_labels"])[di]}
    ev = VOCEvaluator(list(records["class_names"]), iou_threshold=float(records["iou_threshold"]))
    ev._image_ids = [str(i) for i in range(len(images))]
    ev._images_with_gt = set(range(len(images)))
    res = ev._compute_arrays(gt, det)
    return res["map_voc07"], res["map_area"]


def _rows_of(image_index: np.ndarray, n: int) -> list[np.ndarray]:
    """For each image index ``0..n-1``, the rows of ``image_index`` that belong to it (in order)."""
    order = np.argsort(image_index, kind="stable")
    bounds = np.searchsorted(image_index[order], np.arange(n + 1), side="left")
    return [order[bounds[i]:bounds[i + 1]] for i in range(n)]


def _split_by_image(arrays: dict[str, np.ndarray], n_img: int) -> list[dict[str, np.ndarray]]:
    """Split concatenated per-object arrays into one dict per image index
    (insertion order kept inside an image); the ``image`` key is dropped."""
    order = np.argsort(arrays["image"], kind="stable")
    bounds = np.searchsorted(arrays["image"][order], np.arange(n_img + 1), side="left")
    keys = [k for k in arrays if k != "image"]
    return [
        {k: arrays[k][order[bounds[i]:bounds[i + 1]]] for k in keys} for i in range(n_img)
    ]


def _cat(parts: list[np.ndarray], dtype: Any, empty_shape: tuple[int, ...]) -> np.ndarray:
    if not parts:
        return np.zeros(empty_shape, dtype=dtype)
    return np.concatenate(parts).astype(dtype, copy=False)


def _match_class(
    d_img: np.ndarray,
    d_box: np.ndarray,
    d_score: np.ndarray,
    g_img: np.ndarray,
    g_box: np.ndarray,
    g_diff: np.ndarray,
    iou_threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy VOC matching of one class's detections; returns TP/FP flags in
    descending-score order (ignored detections have both flags 0).

    The best-overlap box of a detection does not depend on earlier matches, so
    it is computed for all detections at once. The sequential greedy rule then
    reduces to: among the detections (in score order) whose best box is a
    non-difficult box with IoU >= threshold, the first one per box is a TP and
    the others are duplicates (FP). This is exactly the devkit's loop.
    """
    nd = d_img.shape[0]
    if nd == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.argsort(-d_score, kind="stable")
    d_img = d_img[order]
    d_box = d_box[order]

    # ground truth of this class grouped by image; insertion order kept inside
    # an image so that IoU ties pick the first box, like np.argmax in the devkit
    g_order = np.argsort(g_img, kind="stable")
    g_img_s = g_img[g_order]
    lo = np.searchsorted(g_img_s, d_img, side="left")
    hi = np.searchsorted(g_img_s, d_img, side="right")
    counts = hi - lo
    best_iou = np.full(nd, -np.inf)
    best_gt = np.full(nd, -1, dtype=np.int64)
    total = int(counts.sum())
    if total:
        pair_det = np.repeat(np.arange(nd), counts)
        starts = np.cumsum(counts) - counts
        pair_gt = lo[pair_det] + (np.arange(total) - starts[pair_det])
        pair_gt = g_order[pair_gt]  # back to this class's gt indexing
        iou = _iou_pairs(d_box[pair_det], g_box[pair_gt])
        has = counts > 0
        seg_starts = starts[has]
        seg_max = np.maximum.reduceat(iou, seg_starts)
        best_iou[has] = seg_max
        full_max = np.full(nd, -np.inf)
        full_max[has] = seg_max
        pos = np.where(iou == full_max[pair_det], np.arange(total), total)
        first = np.minimum.reduceat(pos, seg_starts)
        best_gt[has] = pair_gt[first]

    hit = best_iou >= iou_threshold
    ignored = np.zeros(nd, dtype=bool)
    ignored[hit] = g_diff[best_gt[hit]]
    cand = np.nonzero(hit & ~ignored)[0]
    tp = np.zeros(nd, dtype=np.int64)
    if cand.size:
        _, first_idx = np.unique(best_gt[cand], return_index=True)
        tp[cand[first_idx]] = 1
    fp = np.where(ignored | (tp == 1), 0, 1).astype(np.int64)
    return tp, fp
