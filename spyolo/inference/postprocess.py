"""From raw head outputs to detections in original-image pixels.

decode both heads -> score = objectness x best class probability -> confidence threshold ->
per-class NMS (``torchvision.ops.batched_nms``, one call for the whole batch) -> optional cap
on boxes per image -> boxes mapped back to the original image (stretch or letterbox).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.ops import batched_nms, box_convert

from spyolo.data.transforms import unmap_boxes
from spyolo.data.voc import continuous_to_voc
from spyolo.models.heads import HeadSpec, decode_head

__all__ = ["Detections", "decode_outputs", "postprocess", "to_original_voc"]


@dataclass
class Detections:
    """Detections of one image: ``boxes`` (N,4) x1,y1,x2,y2, ``scores`` (N,), ``labels`` (N,)."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def decode_outputs(outputs: Sequence[torch.Tensor], spec: HeadSpec) -> torch.Tensor:
    """Both heads as rows (B, N, 4+1+C): cx, cy, w, h (input pixels), objectness, class probs."""
    rows = []
    for out, mask, stride in zip(outputs, spec.masks, spec.strides):
        anchors = spec.anchors_px[list(mask)]
        rows.append(decode_head(out.float(), anchors, stride, spec.num_classes, spec.scale_xy).flatten())
    return torch.cat(rows, dim=1)


@torch.no_grad()
def postprocess(
    outputs: Sequence[torch.Tensor],
    spec: HeadSpec,
    conf_thresh: float = 0.001,
    nms_iou: float = 0.5,
    max_det: int = 300,
    classes: Sequence[int] | None = None,
) -> list[Detections]:
    """Detections per image in *input* pixels (continuous x1,y1,x2,y2).

    The whole batch goes through one ``batched_nms`` call (boxes grouped by image and class),
    so there is no Python loop over boxes; the loop over images only slices the result.
    ``classes`` (model class indices) limits the classes a box may take: its score is the objectness
    times the best of those classes' probabilities (a model scored on a dataset of fewer classes).
    """
    preds = decode_outputs(outputs, spec)  # (B, N, 5+C)
    batch = preds.shape[0]
    if classes is None:
        cls_prob, labels = preds[..., 5:].max(dim=-1)
    else:
        subset = torch.as_tensor(list(classes), dtype=torch.long, device=preds.device)
        cls_prob, picked = preds[..., 5:].index_select(-1, subset).max(dim=-1)
        labels = subset[picked]
    scores = preds[..., 4] * cls_prob
    keep = scores >= conf_thresh
    img_idx = torch.arange(batch, device=preds.device).unsqueeze(1).expand_as(scores)[keep]
    boxes = box_convert(preds[..., :4][keep], "cxcywh", "xyxy")
    scores, labels = scores[keep], labels[keep]
    groups = img_idx * spec.num_classes + labels
    kept = batched_nms(boxes, scores, groups, nms_iou)  # sorted by descending score
    boxes, scores, labels, img_idx = boxes[kept], scores[kept], labels[kept], img_idx[kept]
    # Stable sort by image keeps each image's detections in descending score order.
    order = torch.sort(img_idx, stable=True).indices
    boxes, scores, labels, img_idx = boxes[order], scores[order], labels[order], img_idx[order]
    counts = torch.bincount(img_idx, minlength=batch).tolist()
    results = []
    for b_boxes, b_scores, b_labels in zip(
        boxes.split(counts), scores.split(counts), labels.split(counts)
    ):
        if max_det > 0:
            b_boxes, b_scores, b_labels = b_boxes[:max_det], b_scores[:max_det], b_labels[:max_det]
        results.append(Detections(b_boxes, b_scores, b_labels))
    return results


def to_original_voc(
    boxes: torch.Tensor | np.ndarray,
    orig_size: tuple[int, int],
    img_size: int,
    letterbox: tuple[float, float, float] | None,
) -> np.ndarray:
    """Input-pixel boxes -> VOC pixel boxes (1-based, inclusive) of the original image.

    A box narrower (or shorter) than one pixel after clipping to the image, e.g. one that lies
    on the image border, becomes the one pixel at its centre: VOC boxes cover whole pixels,
    and ``x1 <= x2`` must hold.
    """
    b = boxes.detach().float().cpu().numpy() if isinstance(boxes, torch.Tensor) else np.asarray(boxes, np.float32)
    cont = unmap_boxes(b.reshape(-1, 4), orig_size, img_size, letterbox)
    voc = continuous_to_voc(cont)
    h, w = int(orig_size[0]), int(orig_size[1])
    for lo, hi, size in ((0, 2, w), (1, 3, h)):
        thin = voc[:, lo] > voc[:, hi]
        if thin.any():
            centre = np.clip(np.ceil((cont[thin, lo] + cont[thin, hi]) / 2.0), 1, size)
            voc[thin, lo] = centre
            voc[thin, hi] = centre
    return voc
