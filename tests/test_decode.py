"""Tests of spyolo.models.heads against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from spyolo.models.heads import decode_head, scale_anchors

ANCHORS = torch.tensor([[10.0, 14.0], [23.0, 27.0], [37.0, 58.0]])
NUM_CLASSES = 2
PER_SLOT = 5 + NUM_CLASSES


def _raw_output(batch: int = 2, grid_h: int = 2, grid_w: int = 3) -> torch.Tensor:
    """All-zero head output with a few hand-set cells."""
    out = torch.zeros(batch, 3 * PER_SLOT, grid_h, grid_w)
    base = 1 * PER_SLOT  # anchor slot 1
    # image 0, slot 1, row 1, column 2
    out[0, base + 0, 1, 2] = math.log(3.0)  # sigmoid = 0.75
    out[0, base + 1, 1, 2] = 0.0  # sigmoid = 0.5
    out[0, base + 2, 1, 2] = math.log(2.0)  # w = 2 * 23
    out[0, base + 3, 1, 2] = 0.0  # h = 27
    out[0, base + 4, 1, 2] = math.log(9.0)  # objectness 0.9
    out[0, base + 5, 1, 2] = math.log(4.0)  # class 0 -> 0.8
    out[0, base + 6, 1, 2] = -math.log(4.0)  # class 1 -> 0.2
    # image 1, slot 2, row 0, column 1
    out[1, 2 * PER_SLOT + 1, 0, 1] = -math.log(3.0)  # sigmoid = 0.25
    out[1, 2 * PER_SLOT + 3, 0, 1] = math.log(0.5)  # h = 29
    return out


def test_decode_hand_checked_cells() -> None:
    decoded = decode_head(_raw_output(), ANCHORS, stride=32, num_classes=NUM_CLASSES)
    assert decoded.boxes.shape == (2, 3, 2, 3, 4)
    assert decoded.logits.shape == (2, 3, 2, 3, PER_SLOT)
    assert decoded.objectness.shape == (2, 3, 2, 3)
    assert decoded.class_probs.shape == (2, 3, 2, 3, NUM_CLASSES)

    # cx = (0.75 + 2) * 32, cy = (0.5 + 1) * 32, w = 23 * 2, h = 27
    torch.testing.assert_close(decoded.boxes[0, 1, 1, 2], torch.tensor([88.0, 48.0, 46.0, 27.0]))
    torch.testing.assert_close(decoded.objectness[0, 1, 1, 2], torch.tensor(0.9))
    torch.testing.assert_close(decoded.class_probs[0, 1, 1, 2], torch.tensor([0.8, 0.2]))
    # all-zero logits: centre of the cell, anchor size, probabilities 0.5
    torch.testing.assert_close(decoded.boxes[0, 0, 0, 0], torch.tensor([16.0, 16.0, 10.0, 14.0]))
    torch.testing.assert_close(decoded.boxes[0, 2, 1, 0], torch.tensor([16.0, 48.0, 37.0, 58.0]))
    torch.testing.assert_close(decoded.objectness[0, 0, 0, 0], torch.tensor(0.5))
    # image 1: cx = (0.5 + 1) * 32, cy = (0.25 + 0) * 32, w = 37, h = 58 / 2
    torch.testing.assert_close(decoded.boxes[1, 2, 0, 1], torch.tensor([48.0, 8.0, 37.0, 29.0]))


def test_decode_stride_16() -> None:
    decoded = decode_head(_raw_output(), ANCHORS, stride=16, num_classes=NUM_CLASSES)
    torch.testing.assert_close(decoded.boxes[0, 1, 1, 2], torch.tensor([44.0, 24.0, 46.0, 27.0]))
    torch.testing.assert_close(decoded.boxes[1, 2, 0, 1], torch.tensor([24.0, 4.0, 37.0, 29.0]))


def test_flatten_layout() -> None:
    decoded = decode_head(_raw_output(), ANCHORS, stride=32, num_classes=NUM_CLASSES)
    flat = decoded.flatten()
    assert flat.shape == (2, 3 * 2 * 3, 4 + 1 + NUM_CLASSES)
    # row = anchor * h * w + grid_row * w + grid_col = 1 * 6 + 1 * 3 + 2
    torch.testing.assert_close(flat[0, 11], torch.tensor([88.0, 48.0, 46.0, 27.0, 0.9, 0.8, 0.2]))
    # 2 * 6 + 0 * 3 + 1
    torch.testing.assert_close(flat[1, 13], torch.tensor([48.0, 8.0, 37.0, 29.0, 0.5, 0.5, 0.5]))


def test_decode_keeps_dtype_and_gradient() -> None:
    out = _raw_output().double().requires_grad_(True)
    decoded = decode_head(out, ANCHORS, stride=32, num_classes=NUM_CLASSES)
    assert decoded.boxes.dtype == torch.float64
    decoded.boxes[0, 1, 1, 2, 2].backward()
    # d(23 * exp(tw)) / d(tw) = 46 at tw = log 2, only at that channel
    grad = out.grad
    assert grad is not None
    assert grad[0, PER_SLOT + 2, 1, 2].item() == pytest.approx(46.0)
    assert grad.abs().sum().item() == pytest.approx(46.0)


def test_decode_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="channels"):
        decode_head(torch.zeros(1, 20, 2, 2), ANCHORS, stride=32, num_classes=NUM_CLASSES)
    with pytest.raises(ValueError, match="anchors_px"):
        decode_head(torch.zeros(1, 21, 2, 2), ANCHORS.flatten(), stride=32, num_classes=NUM_CLASSES)
    with pytest.raises(ValueError, match="4-D"):
        decode_head(torch.zeros(21, 2, 2), ANCHORS, stride=32, num_classes=NUM_CLASSES)


def test_scale_anchors_square_and_rectangular() -> None:
    anchors = [[10, 14], [344, 319]]
    scaled = scale_anchors(anchors, 160)
    assert scaled.dtype == torch.get_default_dtype()
    torch.testing.assert_close(
        scaled, torch.tensor([[10 * 160 / 416, 14 * 160 / 416], [344 * 160 / 416, 319 * 160 / 416]])
    )
    torch.testing.assert_close(scaled[0], torch.tensor([3.8461538, 5.3846154]))
    torch.testing.assert_close(scale_anchors(anchors, 416), torch.tensor([[10.0, 14.0], [344.0, 319.0]]))
    # (H, W) = (208, 832): heights halve, widths double
    torch.testing.assert_close(
        scale_anchors(torch.tensor(anchors, dtype=torch.float64), (208, 832)),
        torch.tensor([[20.0, 7.0], [688.0, 159.5]], dtype=torch.float64),
    )
    torch.testing.assert_close(scale_anchors(anchors, 320, ref_size=320), torch.tensor([[10.0, 14.0], [344.0, 319.0]]))


def test_scale_anchors_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="shape"):
        scale_anchors([1.0, 2.0, 3.0], 416)
    with pytest.raises(ValueError, match="positive"):
        scale_anchors([[1.0, 2.0]], 0)
