"""COCO mAP under the Gen1 protocol: ignored boxes removed from both the ground truth and the detections.

:class:`spyolo.events.protocol.Gen1Protocol` says which boxes count (diagonal and side) and
which time stamps are evaluated (the dataset leaves the others out). Every evaluated time
stamp is one COCO image; boxes are continuous sensor pixels (VOC pixels on the way in, as the
evaluation loop holds them), scored by pycocotools (:func:`spyolo.eval.coco.coco_map`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from spyolo.data.voc import voc_to_continuous
from spyolo.eval.coco import coco_map
from spyolo.events.protocol import Gen1Protocol

__all__ = ["Gen1Evaluator"]


class Gen1Evaluator:
    """Collect ground truth and detections per time stamp; :meth:`compute` the Gen1 COCO mAP."""

    def __init__(self, class_names: Sequence[str], protocol: Gen1Protocol) -> None:
        self.class_names = list(class_names)
        self.protocol = protocol
        self._gts: dict[str, dict[str, np.ndarray]] = {}
        self._dets: dict[str, dict[str, np.ndarray]] = {}
        self.removed_gt = 0
        self.removed_dets = 0

    def add(self, image_id: str, gt_boxes: np.ndarray, gt_labels: np.ndarray, det_boxes: np.ndarray,
            det_scores: np.ndarray, det_labels: np.ndarray, gt_ignored: np.ndarray | None = None) -> None:
        """One time stamp: boxes in VOC pixels (1-based inclusive) of the sensor. ``gt_ignored``:
        which ground-truth boxes the protocol ignores, when the dataset has decided it (its
        ``difficult`` flags), else the protocol decides."""
        gt_boxes = np.asarray(gt_boxes, np.float32).reshape(-1, 4)
        det_boxes = np.asarray(det_boxes, np.float32).reshape(-1, 4)
        keep_gt = (self.protocol.keeps(voc_to_continuous(gt_boxes)) if gt_ignored is None
                   else ~np.asarray(gt_ignored, bool).reshape(-1))
        keep_det = self.protocol.keeps(voc_to_continuous(det_boxes))
        self.removed_gt += int((~keep_gt).sum())
        self.removed_dets += int((~keep_det).sum())
        self._gts[image_id] = {"boxes": gt_boxes[keep_gt], "labels": np.asarray(gt_labels).reshape(-1)[keep_gt]}
        self._dets[image_id] = {"boxes": det_boxes[keep_det], "scores": np.asarray(det_scores).reshape(-1)[keep_det],
                                "labels": np.asarray(det_labels).reshape(-1)[keep_det]}

    def compute(self, max_dets: int = 100) -> dict[str, Any]:
        """:func:`~spyolo.eval.coco.coco_map`'s dict plus the protocol and how many boxes it removed.

        Raises:
            ValueError: no ground-truth box left after the protocol.
        """
        dets = {k: v for k, v in self._dets.items() if v["labels"].size}
        res = coco_map(self.class_names, self._gts, dets, max_dets=max_dets)
        res.update(protocol="gen1", min_box_diag=self.protocol.min_diag, min_box_side=self.protocol.min_side,
                   skip_us=self.protocol.skip_us, time_stamps=len(self._gts), removed_gt=self.removed_gt,
                   removed_detections=self.removed_dets)
        return res
