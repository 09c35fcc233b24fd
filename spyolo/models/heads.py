"""The detection heads' geometry, in one place: anchors, masks, strides, and decoding.

SPYv4 and its ANN twin have two heads: stride 32 (13x13 at 416 px) and stride 16 (26x26).
Each head slot is tied to one anchor: ``masks[k][j]`` is the anchor index of slot ``j`` of
head ``k``. Anchors are given in pixels at :data:`ANCHOR_REF_SIZE` (416) and scaled to the
input size (:func:`scale_anchors`). :class:`HeadSpec` carries everything a decoder or the loss
needs about a model's heads; :func:`head_spec_for` reads it off a model.

Decoding of raw YOLO head outputs into boxes, objectness and class scores:

A detection head emits, for an input of ``H x W`` pixels and a head of stride ``s``,
a tensor of shape ``(B, A * (5 + C), H / s, W / s)``. For anchor slot ``j`` the
channels ``j * (5 + C) ... (j + 1) * (5 + C) - 1`` hold
``[t_x, t_y, t_w, t_h, t_obj, cls_0 .. cls_{C-1}]``. They are decoded as

* ``x = (sigmoid(t_x) * k - (k - 1) / 2 + c_x) * s`` and likewise ``y``, where
  ``(c_x, c_y)`` is the column and row of the grid cell and ``k`` the centre scale
  (Darknet's ``scale_x_y``: 1 for SPYv4 and spyolo-trained models, 1.05 in the original
  yolov4-tiny.cfg, which lets a centre reach the cell's edges): the box centre in input pixels;
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

__all__ = [
    "ANCHOR_REF_SIZE",
    "DEFAULT_ANCHORS",
    "DEFAULT_MASKS",
    "DecodedHead",
    "HeadSpec",
    "STRIDES",
    "decode_head",
    "head_spec_for",
    "scale_anchors",
]

ANCHOR_REF_SIZE = 416
"""Input size (pixels) at which the standard YOLOv4-tiny anchors are defined (the paper's input)."""

DEFAULT_ANCHORS: tuple[tuple[float, float], ...] = ((10, 14), (23, 27), (37, 58), (81, 82), (135, 169), (344, 319))
"""YOLOv4-tiny anchors ``(w, h)`` in pixels at :data:`ANCHOR_REF_SIZE`."""

DEFAULT_MASKS: tuple[tuple[int, ...], ...] = ((3, 4, 5), (1, 2, 3))
"""Anchor indices of the stride-32 head and the stride-16 head (upstream quirk:
anchor 0 unused, anchor 3 shared; kept for parity with the release)."""

STRIDES: tuple[int, int] = (32, 16)
"""Input pixels per grid cell of the two heads, in output order."""


@dataclass(frozen=True)
class HeadSpec:
    """What a decoder (and the loss) needs to know about a detector's heads.

    Attributes:
        anchors_px: ``(K, 2)`` anchors ``(w, h)`` in pixels of the input size.
        masks: anchor indices per head.
        strides: input pixels per grid cell, per head.
        num_classes: number of classes ``C``.
        scale_xy: the centre scale ``k`` of the decoding (Darknet's ``scale_x_y``; 1 by default).
    """

    anchors_px: torch.Tensor
    masks: tuple[tuple[int, ...], ...]
    strides: tuple[int, ...]
    num_classes: int
    scale_xy: float = 1.0

    def grid_sizes(self, img_size: tuple[int, int]) -> list[tuple[int, int]]:
        """``(h, w)`` of each head's grid for an input of ``img_size = (H, W)`` pixels."""
        height, width = img_size
        return [(height // s, width // s) for s in self.strides]


def head_spec_for(model: torch.nn.Module, img_size: int) -> HeadSpec:
    """The heads of ``model`` (SPYv4 or the ANN twin) at input size ``img_size``.

    ``model`` may be wrapped (DistributedDataParallel's ``.module``, ``torch.compile``'s
    ``_orig_mod``). Its anchors, given in pixels at ``model.anchor_ref_size``, are scaled
    to ``img_size``.
    """
    core = getattr(model, "module", model)
    core = getattr(core, "_orig_mod", core)
    anchors = scale_anchors(core.anchors, img_size, core.anchor_ref_size)
    return HeadSpec(
        anchors_px=torch.as_tensor(anchors, dtype=torch.float32),
        masks=tuple(tuple(int(i) for i in m) for m in core.masks),
        strides=tuple(int(s) for s in core.strides),
        num_classes=int(core.num_classes),
        scale_xy=float(core.scale_xy),
    )


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
    scale_xy: float = 1.0,
) -> DecodedHead:
    """Decode one head's raw output.

    Args:
        out: raw head output ``(B, A * (5 + num_classes), h, w)``.
        anchors_px: the head's anchors ``(A, 2)`` as ``(width, height)`` in input
            pixels (already scaled to the input size, see :func:`scale_anchors`).
        stride: input pixels per grid cell of this head (see :data:`STRIDES`).
        num_classes: number of object classes ``C``.
        scale_xy: centre scale ``k`` (see the module doc; 1 is the plain ``sigmoid(t) + c``).

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

    if scale_xy == 1.0:
        cx = (torch.sigmoid(logits[..., 0]) + col) * stride
        cy = (torch.sigmoid(logits[..., 1]) + row) * stride
    else:
        shift = (scale_xy - 1.0) / 2.0
        cx = (torch.sigmoid(logits[..., 0]) * scale_xy - shift + col) * stride
        cy = (torch.sigmoid(logits[..., 1]) * scale_xy - shift + row) * stride
    wh = anchors * torch.exp(logits[..., 2:4])
    boxes = torch.cat((cx.unsqueeze(-1), cy.unsqueeze(-1), wh), dim=-1)
    return DecodedHead(logits=logits, boxes=boxes)


def scale_anchors(
    anchors: torch.Tensor | Sequence[Sequence[float]],
    img_size: int | tuple[int, int],
    ref_size: int = ANCHOR_REF_SIZE,
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
