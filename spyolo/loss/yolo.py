"""The YOLOv4-tiny detection loss used by SPYv4, vectorised.

The loss follows section 3 of the SPYv4 reference: anchor assignment by shape IoU over
all anchors, an ignore threshold for negatives, a CIoU box term weighted by
``2 - w * h``, binary cross-entropy objectness and class terms, and a total divided by
the number of positives over all heads.

Targets are built once per batch (:meth:`YOLOLoss.build_targets`, which synchronises
with the device a few times to size its tensors) and then reused at every timestep;
:meth:`YOLOLoss.forward` runs without host synchronisation and without Python loops
over boxes or images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_convert

from spyolo.models.heads import DEFAULT_MASKS, STRIDES, HeadSpec, decode_head

__all__ = ["YOLOLoss", "YOLOTargets", "HeadTargets", "batched_pairwise_iou", "ciou_loss"]


@dataclass(frozen=True)
class HeadTargets:
    """Positives of one head.

    Attributes:
        grid_size: ``(h, w)`` of the head's grid.
        pos_mask: ``(B, A, h, w)`` bool, True at positive slots.
        pos_index: ``(P,)`` int64, flat slot index into ``B * A * h * w`` (order
            batch, anchor slot, grid row, grid column) of each positive.
        box_xyxy: ``(P, 4)`` ground-truth box of each positive, ``(x1, y1, x2, y2)`` in
            input pixels.
        box_weight: ``(P,)`` the box-term weight ``2 - w * h`` (``w, h`` in [0, 1]).
        cls: ``(P,)`` int64 class index of each positive.
        cls_target: ``(P, C)`` float32 class targets (one-hot, label smoothing applied),
            built here once per batch: ``F.one_hot`` validates its input with a host
            synchronisation on CUDA, which must not happen inside the time loop.
    """

    grid_size: tuple[int, int]
    pos_mask: torch.Tensor
    pos_index: torch.Tensor
    box_xyxy: torch.Tensor
    box_weight: torch.Tensor
    cls: torch.Tensor
    cls_target: torch.Tensor


@dataclass(frozen=True)
class YOLOTargets:
    """Training targets of one batch, shared by every timestep.

    Attributes:
        heads: one :class:`HeadTargets` per head, in the order of the outputs.
        gt_xyxy: ``(B, G, 4)`` every ground-truth box of each image, in input pixels,
            padded to the largest per-image count ``G`` (at least 1).
        gt_valid: ``(B, G)`` bool, False at padding.
        num_pos: 0-dim int64, number of positives over all heads.
        batch_size: ``B``.
        img_size: input size ``(H, W)`` in pixels.
    """

    heads: tuple[HeadTargets, ...]
    gt_xyxy: torch.Tensor
    gt_valid: torch.Tensor
    num_pos: torch.Tensor
    batch_size: int
    img_size: tuple[int, int]


def batched_pairwise_iou(boxes_a: torch.Tensor, boxes_b: torch.Tensor) -> torch.Tensor:
    """IoU of every box of ``boxes_a`` ``(B, N, 4)`` with every box of ``boxes_b`` ``(B, G, 4)``.

    Boxes are ``(x1, y1, x2, y2)``. Returns ``(B, N, G)``. A pair whose union is zero
    (two empty boxes) gets IoU 0.
    """
    a = boxes_a.unsqueeze(2)
    b = boxes_b.unsqueeze(1)
    inter_w = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    inter_h = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(min=0)
    inter = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), 0.0)


def ciou_loss(pred_cxcywh: torch.Tensor, target_xyxy: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """``1 - CIoU`` of predicted boxes ``(cx, cy, w, h)`` and target boxes ``(x1, y1, x2, y2)``, per row.

    CIoU = IoU - rho^2 / c^2 - alpha * v (Zheng et al., 2020), with rho the centre distance, c
    the diagonal of the smallest enclosing box, ``v = 4 / pi^2 (atan(w_g / h_g) - atan(w / h))^2``
    and ``alpha = v / (1 - IoU + v)`` (not differentiated), the formulas of torchvision's
    ``complete_box_iou_loss`` with its ``eps``. The aspect term takes the predicted ``w`` and ``h``
    as decoded, not as ``x2 - x1``: a predicted box far smaller than a pixel (``t_w`` or ``t_h``
    around -17 and below) would collapse to zero width in corner form and make ``atan(0 / 0)``
    NaN; here it stays finite.
    """
    cx, cy, w, h = pred_cxcywh.unbind(dim=-1)
    gx1, gy1, gx2, gy2 = target_xyxy.unbind(dim=-1)
    x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    inter = (torch.minimum(x2, gx2) - torch.maximum(x1, gx1)).clamp(min=0) * (
        torch.minimum(y2, gy2) - torch.maximum(y1, gy1)
    ).clamp(min=0)
    gw, gh = gx2 - gx1, gy2 - gy1
    union = w * h + gw * gh - inter
    iou = inter / (union + eps)
    diagonal2 = (
        (torch.maximum(x2, gx2) - torch.minimum(x1, gx1)) ** 2
        + (torch.maximum(y2, gy2) - torch.minimum(y1, gy1)) ** 2
        + eps
    )
    centre2 = (cx - (gx1 + gx2) / 2) ** 2 + (cy - (gy1 + gy2) / 2) ** 2
    tiny = torch.finfo(w.dtype).tiny
    v = (4 / torch.pi**2) * (torch.atan(gw / gh) - torch.atan(w / h.clamp(min=tiny))) ** 2
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return 1 - iou + centre2 / diagonal2 + alpha * v


class YOLOLoss(nn.Module):
    """YOLO loss over the heads of one timestep.

    Args:
        anchors: ``(K, 2)`` anchors ``(width, height)`` in input pixels (scale the
            416-px defaults with :func:`spyolo.models.heads.scale_anchors` for other
            input sizes).
        masks: for each head, the indices into ``anchors`` of its slots; head ``k``'s
            slot ``j`` uses ``anchors[masks[k][j]]``.
        num_classes: number of classes ``C``.
        strides: input pixels per grid cell of each head.
        ignore_thresh: a non-positive slot whose decoded box has IoU above this with
            some ground-truth box of its image is excluded from the negatives.
        label_smoothing: ``eps``; class targets become ``y * (1 - eps) + eps / C``.
        scale_xy: centre scale of the decoding (:func:`spyolo.models.heads.decode_head`).

    The anchors are buffers: move the module to the device of the head outputs
    (``loss_fn.to(device)``); :meth:`forward` refuses outputs on another device rather
    than copying the anchors (and synchronising) at every call.
    """

    def __init__(
        self,
        anchors: torch.Tensor | Sequence[Sequence[float]],
        masks: Sequence[Sequence[int]] = DEFAULT_MASKS,
        num_classes: int = 20,
        strides: Sequence[int] = STRIDES,
        ignore_thresh: float = 0.5,
        label_smoothing: float = 0.0,
        scale_xy: float = 1.0,
    ) -> None:
        super().__init__()
        anchor_tensor = torch.as_tensor(anchors, dtype=torch.float32)
        if anchor_tensor.dim() != 2 or anchor_tensor.shape[1] != 2 or anchor_tensor.shape[0] < 1:
            raise ValueError(f"YOLOLoss: anchors must have shape (K, 2) with K >= 1, got {tuple(anchor_tensor.shape)}")
        if not bool((anchor_tensor > 0).all()):
            raise ValueError(f"YOLOLoss: anchor sizes must be positive, got {anchor_tensor.tolist()}")
        if len(masks) != len(strides) or len(masks) == 0:
            raise ValueError(
                f"YOLOLoss: need one mask per stride, got {len(masks)} masks and {len(strides)} strides"
            )
        num_anchors = anchor_tensor.shape[0]
        for head, mask in enumerate(masks):
            if len(mask) == 0 or len(set(mask)) != len(mask) or not all(0 <= i < num_anchors for i in mask):
                raise ValueError(
                    f"YOLOLoss: mask {list(mask)} of head {head} must hold distinct anchor indices "
                    f"in [0, {num_anchors})"
                )
        if num_classes < 1:
            raise ValueError(f"YOLOLoss: num_classes must be >= 1, got {num_classes}")
        if any(s <= 0 for s in strides):
            raise ValueError(f"YOLOLoss: strides must be positive, got {list(strides)}")
        if not 0.0 <= ignore_thresh <= 1.0:
            raise ValueError(f"YOLOLoss: ignore_thresh must lie in [0, 1], got {ignore_thresh}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"YOLOLoss: label_smoothing must lie in [0, 1), got {label_smoothing}")

        self.masks: tuple[tuple[int, ...], ...] = tuple(tuple(int(i) for i in m) for m in masks)
        self.strides: tuple[int, ...] = tuple(int(s) for s in strides)
        self.num_classes = int(num_classes)
        self.ignore_thresh = float(ignore_thresh)
        self.label_smoothing = float(label_smoothing)
        self.scale_xy = float(scale_xy)
        self.register_buffer("anchors", anchor_tensor, persistent=False)
        for head, mask in enumerate(self.masks):
            # slot_of_anchor[i] = slot of anchor i in this head, -1 where the head lacks it
            slot_of_anchor = torch.full((num_anchors,), -1, dtype=torch.long)
            slot_of_anchor[list(mask)] = torch.arange(len(mask))
            self.register_buffer(f"_slot_of_anchor_{head}", slot_of_anchor, persistent=False)
            self.register_buffer(f"_head_anchors_{head}", anchor_tensor[list(mask)].clone(), persistent=False)

    @classmethod
    def from_spec(cls, spec: HeadSpec, ignore_thresh: float = 0.5, label_smoothing: float = 0.0) -> YOLOLoss:
        """The loss for the heads described by ``spec`` (:func:`spyolo.models.heads.head_spec_for`)."""
        return cls(spec.anchors_px, spec.masks, spec.num_classes, strides=spec.strides,
                   ignore_thresh=ignore_thresh, label_smoothing=label_smoothing, scale_xy=spec.scale_xy)

    def grid_sizes(self, img_size: tuple[int, int]) -> list[tuple[int, int]]:
        """``(h, w)`` of each head's grid for an input of ``img_size = (H, W)`` pixels."""
        return [(img_size[0] // s, img_size[1] // s) for s in self.strides]

    @property
    def num_heads(self) -> int:
        """Number of detection heads."""
        return len(self.masks)

    def _head_anchors(self, head: int) -> torch.Tensor:
        return getattr(self, f"_head_anchors_{head}")

    def _slot_of_anchor(self, head: int) -> torch.Tensor:
        return getattr(self, f"_slot_of_anchor_{head}")

    def _check_target_values(self, targets: torch.Tensor, batch_size: int) -> None:
        """Raise ValueError on malformed target rows (a few host syncs on an accelerator)."""
        batch_idx, cls, boxes = targets[:, 0], targets[:, 1], targets[:, 2:6]
        problems = []
        if bool(((batch_idx != batch_idx.round()) | (batch_idx < 0) | (batch_idx >= batch_size)).any()):
            problems.append(f"batch index must be an integer in [0, {batch_size})")
        if bool(((cls != cls.round()) | (cls < 0) | (cls >= self.num_classes)).any()):
            problems.append(f"class must be an integer in [0, {self.num_classes})")
        if bool(((boxes[:, :2] < 0) | (boxes[:, :2] > 1)).any()):
            problems.append("box centre (cx, cy) must lie in [0, 1]")
        if bool(((boxes[:, 2:] <= 0) | (boxes[:, 2:] > 1)).any()):
            problems.append("box size (w, h) must lie in (0, 1]")
        if bool((~torch.isfinite(targets)).any()):
            problems.append("values must be finite")
        if problems:
            raise ValueError("YOLOLoss.build_targets: bad target rows: " + "; ".join(problems))

    @torch.no_grad()
    def build_targets(
        self,
        targets: torch.Tensor,
        batch_size: int,
        feature_sizes: Sequence[tuple[int, int]],
        img_size: tuple[int, int],
        validate: bool = True,
    ) -> YOLOTargets:
        """Assign ground-truth boxes to head slots, once per batch.

        Args:
            targets: ``(M, 6)`` rows ``[batch_index, class, cx, cy, w, h]``, box values
                normalised to [0, 1] of the input image. ``M`` may be 0.
            batch_size: number of images ``B`` in the batch.
            feature_sizes: ``(h, w)`` grid of each head, in head order.
            img_size: input size ``(H, W)`` in pixels; each head must satisfy
                ``h * stride == H`` and ``w * stride == W``.
            validate: check the target values (a few host syncs on an accelerator; shapes are always
                checked).

        Returns:
            :class:`YOLOTargets` on the device of ``targets``, box values in the dtype
            of ``targets``.

        A box is a positive of head ``k`` when the anchor (of all ``K``) whose shape
        best matches it (IoU of the two sizes centred together; ties go to the lower
        index) is in ``masks[k]``; the slot is that anchor's at cell
        ``(floor(cx * w), floor(cy * h))``, clamped to the grid. When several boxes of
        an image fall in the same slot, the one in the later row wins.
        """
        if targets.dim() != 2 or targets.shape[1] != 6:
            raise ValueError(f"YOLOLoss.build_targets: targets must have shape (M, 6), got {tuple(targets.shape)}")
        if not targets.is_floating_point():
            raise ValueError(f"YOLOLoss.build_targets: targets must be a floating tensor, got {targets.dtype}")
        if batch_size < 1:
            raise ValueError(f"YOLOLoss.build_targets: batch_size must be >= 1, got {batch_size}")
        if len(feature_sizes) != self.num_heads:
            raise ValueError(
                f"YOLOLoss.build_targets: got {len(feature_sizes)} feature sizes for {self.num_heads} heads"
            )
        img_h, img_w = int(img_size[0]), int(img_size[1])
        for head, ((grid_h, grid_w), stride) in enumerate(zip(feature_sizes, self.strides)):
            if grid_h * stride != img_h or grid_w * stride != img_w:
                raise ValueError(
                    f"YOLOLoss.build_targets: head {head} grid {grid_h}x{grid_w} at stride {stride} does not "
                    f"cover the {img_h}x{img_w} input"
                )
        if validate and targets.shape[0] > 0:
            self._check_target_values(targets, batch_size)

        device = targets.device
        num_rows = targets.shape[0]
        batch_idx = targets[:, 0].long()
        cls = targets[:, 1].long()
        norm_boxes = targets[:, 2:6]
        scale = targets.new_tensor([img_w, img_h, img_w, img_h])
        px_xyxy = box_convert(norm_boxes * scale, "cxcywh", "xyxy")
        box_weight = 2.0 - norm_boxes[:, 2] * norm_boxes[:, 3]

        # Best anchor by shape IoU (both boxes centred at the origin), over all anchors.
        anchors = self.anchors.to(device=device, dtype=targets.dtype)
        gt_wh = norm_boxes[:, 2:4] * scale[:2]
        inter = torch.minimum(gt_wh[:, None, 0], anchors[None, :, 0]) * torch.minimum(
            gt_wh[:, None, 1], anchors[None, :, 1]
        )
        union = gt_wh[:, None, 0] * gt_wh[:, None, 1] + anchors[None, :, 0] * anchors[None, :, 1] - inter
        best_anchor = (inter / union).argmax(dim=1)  # first maximum on ties: the lowest index

        row_ids = torch.arange(num_rows, device=device)
        heads = []
        for head, (grid_h, grid_w) in enumerate(feature_sizes):
            num_slots = len(self.masks[head])
            slot = self._slot_of_anchor(head).to(device)[best_anchor]
            assigned = slot >= 0
            col = (norm_boxes[:, 0] * grid_w).floor().long().clamp(0, grid_w - 1)
            row = (norm_boxes[:, 1] * grid_h).floor().long().clamp(0, grid_h - 1)
            flat = ((batch_idx * num_slots + slot.clamp(min=0)) * grid_h + row) * grid_w + col
            # Later rows win a shared slot: keep, per slot, the largest row id assigned to it.
            winner = torch.full((batch_size * num_slots * grid_h * grid_w,), -1, dtype=torch.long, device=device)
            winner.scatter_reduce_(0, flat[assigned], row_ids[assigned], reduce="amax")
            keep_rows = torch.nonzero(assigned & (winner[flat] == row_ids)).squeeze(1)
            heads.append(
                HeadTargets(
                    grid_size=(int(grid_h), int(grid_w)),
                    pos_mask=(winner >= 0).reshape(batch_size, num_slots, grid_h, grid_w),
                    pos_index=flat[keep_rows],
                    box_xyxy=px_xyxy[keep_rows],
                    box_weight=box_weight[keep_rows],
                    cls=cls[keep_rows],
                    cls_target=self._class_targets(cls[keep_rows]),
                )
            )

        # Every box of each image, padded to the largest per-image count, for the ignore test.
        counts = torch.bincount(batch_idx, minlength=batch_size)
        max_count = max(1, int(counts.max()))
        order = torch.argsort(batch_idx, stable=True)
        first_of_image = torch.cumsum(counts, 0) - counts
        rank = torch.empty_like(batch_idx)
        rank[order] = torch.arange(num_rows, device=device) - first_of_image[batch_idx[order]]
        gt_xyxy = targets.new_zeros((batch_size, max_count, 4))
        gt_valid = torch.zeros((batch_size, max_count), dtype=torch.bool, device=device)
        gt_xyxy[batch_idx, rank] = px_xyxy
        gt_valid[batch_idx, rank] = True

        # The positive counts are already known on the host (tensor shapes).
        num_pos = torch.tensor(sum(h.pos_index.shape[0] for h in heads), dtype=torch.long, device=device)
        return YOLOTargets(
            heads=tuple(heads),
            gt_xyxy=gt_xyxy,
            gt_valid=gt_valid,
            num_pos=num_pos,
            batch_size=int(batch_size),
            img_size=(img_h, img_w),
        )

    def _class_targets(self, cls: torch.Tensor) -> torch.Tensor:
        """One-hot class targets ``(P, C)`` with label smoothing ``y(1-eps) + eps/C``."""
        target = F.one_hot(cls, self.num_classes).to(torch.float32)
        if self.label_smoothing > 0:
            target = target * (1.0 - self.label_smoothing) + self.label_smoothing / self.num_classes
        return target

    def forward(
        self, outputs: Sequence[torch.Tensor], built: YOLOTargets
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of one timestep's head outputs against prebuilt targets.

        Args:
            outputs: one raw output ``(B, A * (5 + C), h, w)`` per head, in head order.
                Any floating dtype; the loss is computed in at least float32.
            built: targets from :meth:`build_targets` for this batch.

        Returns:
            ``(loss, parts)``: the 0-dim loss ``(box + obj + cls) / max(1, num_pos)``
            summed over heads, and detached 0-dim tensors ``box``, ``obj``, ``cls``
            (each already divided by ``max(1, num_pos)``, so they add up to the loss)
            and ``num_pos``.
        """
        if len(outputs) != self.num_heads:
            raise ValueError(f"YOLOLoss: got {len(outputs)} head outputs, expected {self.num_heads}")
        dtype = torch.promote_types(outputs[0].dtype, torch.float32)
        box_sum = outputs[0].new_zeros((), dtype=dtype)
        obj_sum = outputs[0].new_zeros((), dtype=dtype)
        cls_sum = outputs[0].new_zeros((), dtype=dtype)
        gt_xyxy = built.gt_xyxy.to(dtype)

        for head, (out, head_targets) in enumerate(zip(outputs, built.heads)):
            batch = out.shape[0]
            if batch != built.batch_size or tuple(out.shape[-2:]) != head_targets.grid_size:
                raise ValueError(
                    f"YOLOLoss: head {head} output has shape {tuple(out.shape)}, but the targets were built for "
                    f"batch {built.batch_size} and grid {head_targets.grid_size}"
                )
            if out.device != built.gt_xyxy.device:
                raise ValueError(
                    f"YOLOLoss: head {head} output is on {out.device}, the targets on {built.gt_xyxy.device}"
                )
            if out.device != self.anchors.device:
                raise ValueError(
                    f"YOLOLoss: head {head} output is on {out.device} but the loss module is on "
                    f"{self.anchors.device}; move it with .to(device) (its anchors are buffers)"
                )
            decoded = decode_head(out.to(dtype), self._head_anchors(head), self.strides[head], self.num_classes,
                                  self.scale_xy)
            per_slot = decoded.logits.shape[-1]
            logits = decoded.logits.reshape(batch, -1, per_slot)
            boxes = decoded.boxes.reshape(batch, -1, 4)

            # Negatives: not positive, and IoU <= ignore_thresh with every box of the image.
            iou = batched_pairwise_iou(box_convert(boxes.detach(), "cxcywh", "xyxy"), gt_xyxy)
            best_iou = torch.where(built.gt_valid.unsqueeze(1), iou, 0.0).amax(dim=2)
            positive = head_targets.pos_mask.reshape(batch, -1)
            counted = positive | (best_iou <= self.ignore_thresh)

            # binary_cross_entropy_with_logits(z, y) == BCE(sigmoid(z), y), computed stably.
            obj_bce = F.binary_cross_entropy_with_logits(logits[..., 4], positive.to(dtype), reduction="none")
            obj_sum = obj_sum + torch.where(counted, obj_bce, 0.0).sum()

            pos_logits = logits.reshape(-1, per_slot).index_select(0, head_targets.pos_index)
            pos_boxes = boxes.reshape(-1, 4).index_select(0, head_targets.pos_index)
            box_term = ciou_loss(pos_boxes, head_targets.box_xyxy.to(dtype))
            box_sum = box_sum + (box_term * head_targets.box_weight.to(dtype)).sum()

            cls_target = head_targets.cls_target.to(dtype)
            cls_sum = cls_sum + F.binary_cross_entropy_with_logits(pos_logits[:, 5:], cls_target, reduction="sum")

        normaliser = built.num_pos.clamp(min=1).to(dtype)
        box_term = box_sum / normaliser
        obj_term = obj_sum / normaliser
        cls_term = cls_sum / normaliser
        loss = box_term + obj_term + cls_term
        parts = {
            "box": box_term.detach(),
            "obj": obj_term.detach(),
            "cls": cls_term.detach(),
            "num_pos": built.num_pos.detach(),
        }
        return loss, parts
