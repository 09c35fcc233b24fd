"""Decoding of raw YOLO head outputs into boxes, objectness and class scores.

A detection head emits, for an input of ``H x W`` pixels and a head of stride ``s``,
a tensor of shape ``(B, A * (5 + C), H / s, W / s)``. For anchor slot ``j`` the
channels ``j * (5 + C) ... (j + 1) * (5 + C) - 1`` hold
``[t_x, t_y, t_w, t_h, t_obj, cls_0 .. cls_{C-1}]``. They are decoded as

* ``x = (sigmoid(t_x) + c_x) * s`` and ``y = (sigmoid(t_y) + c_y) * s``, where
  ``(c_x, c_y)`` is the column and row of the grid cell: the box centre in input pixels;
* ``w = a_w * exp(t_w)`` and ``h = a_h * exp(t_h)``, with ``(a_w, a_h)`` the slot's
  anchor in input pixels;
* objectness ``sigmoid(t_obj)`` and class probabilities ``sigmoid(cls_k)`` (independent
  per class, not a softmax).

The same decoder serves the training loss and inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["DecodedHead", "decode_head", "scale_anchors", "DEFAULT_ANCHOR_REF_SIZE"]

DEFAULT_ANCHOR_REF_SIZE = 416
"""Input size (pixels) at which the standard YOLOv4-tiny anchors are defined."""


@dataclass(frozen=True)
class DecodedHead:
    """One decoded head output.

    Attributes:
        logits: the raw head output rearranged to ``(B, A, h, w, 5 + C)``
            (a view of the input where possible), channels
            ``[t_x, t_y, t_w, t_h, t_obj, cls...]``.
        boxes: decoded boxes ``(B, A, h, w, 4)`` as ``(cx, cy, w, h)`` in input pixels.
    """

    logits: torch.Tensor
    boxes: torch.Tensor

    @property
    def objectness(self) -> torch.Tensor:
        """Objectness probability ``sigmoid(t_obj)``, shape ``(B, A, h, w)``."""
        return torch.sigmoid(self.logits[..., 4])

    @property
    def class_probs(self) -> torch.Tensor:
        """Independent per-class probabilities, shape ``(B, A, h, w, C)``."""
        return torch.sigmoid(self.logits[..., 5:])

    def flatten(self) -> torch.Tensor:
        """All slots as rows ``(B, N, 4 + 1 + C)`` with ``N = A * h * w``.

        Columns are ``[cx, cy, w, h, objectness, class probabilities...]`` (pixels,
        probabilities). Row ``n`` is slot ``a * h * w + row * w + col``: anchor-major,
        then grid row, then grid column.
        """
        batch = self.boxes.shape[0]
        merged = torch.cat(
            (self.boxes, self.objectness.unsqueeze(-1), self.class_probs), dim=-1
        )
        return merged.reshape(batch, -1, merged.shape[-1])


def decode_head(
    out: torch.Tensor,
    anchors_px: torch.Tensor,
    stride: int | float,
    num_classes: int,
) -> DecodedHead:
    """Decode one head's raw output.

    Args:
        out: raw head output ``(B, A * (5 + num_classes), h, w)``.
        anchors_px: the head's anchors ``(A, 2)`` as ``(width, height)`` in input
            pixels (already scaled to the input size, see :func:`scale_anchors`).
        stride: input pixels per grid cell of this head (32 or 16 for SPYv4).
        num_classes: number of object classes ``C``.

    Returns:
        A :class:`DecodedHead` in the dtype of ``out``. Grid offsets are built on the
        fly (two small ``arange`` tensors), so nothing is cached between calls.

    Raises:
        ValueError: if the shapes of ``out`` and ``anchors_px`` do not match.
    """
    if out.dim() != 4:
        raise ValueError(f"decode_head: expected a 4-D head output (B, A*(5+C), h, w), got shape {tuple(out.shape)}")
    if anchors_px.dim() != 2 or anchors_px.shape[1] != 2:
        raise ValueError(f"decode_head: anchors_px must have shape (A, 2), got {tuple(anchors_px.shape)}")
    if num_classes < 1:
        raise ValueError(f"decode_head: num_classes must be >= 1, got {num_classes}")
    num_anchors = anchors_px.shape[0]
    per_slot = 5 + num_classes
    batch, channels, grid_h, grid_w = out.shape
    if channels != num_anchors * per_slot:
        raise ValueError(
            f"decode_head: head output has {channels} channels, expected "
            f"{num_anchors} anchors x (5 + {num_classes} classes) = {num_anchors * per_slot}"
        )

    logits = out.reshape(batch, num_anchors, per_slot, grid_h, grid_w).permute(0, 1, 3, 4, 2)
    anchors = anchors_px.to(device=out.device, dtype=out.dtype).reshape(1, num_anchors, 1, 1, 2)
    col = torch.arange(grid_w, device=out.device, dtype=out.dtype).reshape(1, 1, 1, grid_w)
    row = torch.arange(grid_h, device=out.device, dtype=out.dtype).reshape(1, 1, grid_h, 1)

    cx = (torch.sigmoid(logits[..., 0]) + col) * stride
    cy = (torch.sigmoid(logits[..., 1]) + row) * stride
    wh = anchors * torch.exp(logits[..., 2:4])
    boxes = torch.cat((cx.unsqueeze(-1), cy.unsqueeze(-1), wh), dim=-1)
    return DecodedHead(logits=logits, boxes=boxes)


def scale_anchors(
    anchors: torch.Tensor | Sequence[Sequence[float]],
    img_size: int | tuple[int, int],
    ref_size: int = DEFAULT_ANCHOR_REF_SIZE,
) -> torch.Tensor:
    """Rescale anchors defined at ``ref_size`` pixels to another input size.

    The standard anchors are given in pixels of a 416 x 416 input. A model fed a
    different size sees every object scaled by the same factor, so its anchors are
    scaled likewise: width by ``W / ref_size`` and height by ``H / ref_size``
    (a 160 px model uses ``anchors * 160 / 416``). This keeps the anchor shapes, and
    therefore the anchor-to-box assignment, the same relative to the image.

    Args:
        anchors: ``(K, 2)`` anchors as ``(width, height)`` in pixels at ``ref_size``.
        img_size: the input size, an int for a square input or ``(H, W)``.
        ref_size: the size at which ``anchors`` are defined (416 by default).

    Returns:
        A new float tensor ``(K, 2)`` of anchors in pixels of the given input size.

    Raises:
        ValueError: on a malformed anchor array or a non-positive size.
    """
    anchor_tensor = torch.as_tensor(anchors)
    if not anchor_tensor.is_floating_point():
        anchor_tensor = anchor_tensor.to(torch.get_default_dtype())
    if anchor_tensor.dim() != 2 or anchor_tensor.shape[1] != 2:
        raise ValueError(f"scale_anchors: anchors must have shape (K, 2), got {tuple(anchor_tensor.shape)}")
    if isinstance(img_size, int):
        height, width = img_size, img_size
    else:
        height, width = img_size
    if height <= 0 or width <= 0 or ref_size <= 0:
        raise ValueError(f"scale_anchors: sizes must be positive, got img_size={img_size}, ref_size={ref_size}")
    factor = anchor_tensor.new_tensor([width / ref_size, height / ref_size])
    return anchor_tensor * factor
