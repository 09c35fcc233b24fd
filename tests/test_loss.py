"""Tests of spyolo.loss.yolo.YOLOLoss against a slow, loop-based reference.

The reference below is written for clarity, not speed: Python loops over heads,
images, anchor slots, grid cells and boxes, with every formula spelt out from its
definition (sigmoid, log-BCE, IoU and CIoU). It shares no code with the module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from spyolo.loss.yolo import YOLOLoss, YOLOTargets
from spyolo.models.heads import scale_anchors

ANCHORS_416 = [[10.0, 14.0], [23.0, 27.0], [37.0, 58.0], [81.0, 82.0], [135.0, 169.0], [344.0, 319.0]]
MASKS = ((3, 4, 5), (1, 2, 3))
STRIDES = (32, 16)
NUM_CLASSES = 3


# ----------------------------------------------------------------------------------
# Reference implementation
# ----------------------------------------------------------------------------------


@dataclass
class RefResult:
    loss: torch.Tensor
    box: torch.Tensor
    obj: torch.Tensor
    cls: torch.Tensor
    num_pos: int
    num_ignored: int  # non-positive slots excluded from the negatives


def _sigmoid(t: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + torch.exp(-t))


def _bce(p: torch.Tensor, y: float) -> torch.Tensor:
    return -(y * torch.log(p) + (1.0 - y) * torch.log(1.0 - p))


def _iou_floats(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """IoU of two (x1, y1, x2, y2) boxes given as Python floats."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _ciou(pred: tuple[torch.Tensor, ...], gt: tuple[float, ...]) -> torch.Tensor:
    """CIoU of pred (cx, cy, w, h as tensors) and gt (cx, cy, w, h as floats), by definition.

    CIoU = IoU - rho^2 / c^2 - alpha * v with rho the centre distance, c the diagonal
    of the smallest enclosing box, v = 4 / pi^2 (atan(w_g / h_g) - atan(w / h))^2 and
    alpha = v / (1 - IoU + v). alpha is a weight and is not differentiated (as in the
    CIoU authors' code and torchvision).
    """
    px, py, pw, ph = pred
    gx, gy, gw, gh = gt
    p_x1, p_y1, p_x2, p_y2 = px - pw / 2, py - ph / 2, px + pw / 2, py + ph / 2
    g_x1, g_y1, g_x2, g_y2 = gx - gw / 2, gy - gh / 2, gx + gw / 2, gy + gh / 2
    inter_w = torch.clamp(torch.minimum(p_x2, torch.tensor(g_x2)) - torch.maximum(p_x1, torch.tensor(g_x1)), min=0)
    inter_h = torch.clamp(torch.minimum(p_y2, torch.tensor(g_y2)) - torch.maximum(p_y1, torch.tensor(g_y1)), min=0)
    inter = inter_w * inter_h
    union = pw * ph + gw * gh - inter
    iou = inter / union
    rho2 = (px - gx) ** 2 + (py - gy) ** 2
    c_w = torch.maximum(p_x2, torch.tensor(g_x2)) - torch.minimum(p_x1, torch.tensor(g_x1))
    c_h = torch.maximum(p_y2, torch.tensor(g_y2)) - torch.minimum(p_y1, torch.tensor(g_y1))
    c2 = c_w**2 + c_h**2
    v = (4.0 / math.pi**2) * (math.atan(gw / gh) - torch.atan(pw / ph)) ** 2
    alpha = (v / (1.0 - iou + v)).detach()
    return iou - rho2 / c2 - alpha * v


def reference_loss(
    outputs: list[torch.Tensor],
    targets: torch.Tensor,
    anchors: list[list[float]],
    masks: tuple[tuple[int, ...], ...],
    strides: tuple[int, ...],
    num_classes: int,
    img_size: tuple[int, int],
    ignore_thresh: float = 0.5,
    label_smoothing: float = 0.0,
) -> RefResult:
    img_h, img_w = img_size
    rows = targets.tolist()
    batch = outputs[0].shape[0]

    best_anchor = []
    for r in rows:
        gw, gh = r[4] * img_w, r[5] * img_h
        best_i, best_iou = 0, -1.0
        for i, (aw, ah) in enumerate(anchors):
            inter = min(gw, aw) * min(gh, ah)
            iou = inter / (gw * gh + aw * ah - inter)
            if iou > best_iou:  # strict: ties keep the lower index
                best_i, best_iou = i, iou
        best_anchor.append(best_i)

    gt_boxes_of_image: list[list[tuple[float, ...]]] = [[] for _ in range(batch)]
    for r in rows:
        cx, cy, w, h = r[2] * img_w, r[3] * img_h, r[4] * img_w, r[5] * img_h
        gt_boxes_of_image[int(r[0])].append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))

    zero = outputs[0].new_zeros(())
    box_sum, obj_sum, cls_sum = zero, zero, zero
    num_pos = 0
    num_ignored = 0
    per_slot = 5 + num_classes
    for k, out in enumerate(outputs):
        grid_h, grid_w = out.shape[2], out.shape[3]
        stride = strides[k]
        positives: dict[tuple[int, int, int, int], int] = {}
        for i, r in enumerate(rows):
            if best_anchor[i] in masks[k]:
                slot = masks[k].index(best_anchor[i])
                col = min(max(math.floor(r[2] * grid_w), 0), grid_w - 1)
                row = min(max(math.floor(r[3] * grid_h), 0), grid_h - 1)
                positives[(int(r[0]), slot, row, col)] = i  # a later row overwrites
        num_pos += len(positives)
        for b in range(batch):
            for a in range(len(masks[k])):
                aw, ah = anchors[masks[k][a]]
                for y in range(grid_h):
                    for x in range(grid_w):
                        t = out[b, a * per_slot : (a + 1) * per_slot, y, x]
                        px = (_sigmoid(t[0]) + x) * stride
                        py = (_sigmoid(t[1]) + y) * stride
                        pw = aw * torch.exp(t[2])
                        ph = ah * torch.exp(t[3])
                        conf = _sigmoid(t[4])
                        key = (b, a, y, x)
                        if key in positives:
                            g = rows[positives[key]]
                            obj_sum = obj_sum + _bce(conf, 1.0)
                            gt = (g[2] * img_w, g[3] * img_h, g[4] * img_w, g[5] * img_h)
                            box_sum = box_sum + (1.0 - _ciou((px, py, pw, ph), gt)) * (2.0 - g[4] * g[5])
                            for c in range(num_classes):
                                y_c = (1.0 if c == int(g[1]) else 0.0) * (1.0 - label_smoothing)
                                y_c += label_smoothing / num_classes
                                cls_sum = cls_sum + _bce(_sigmoid(t[5 + c]), y_c)
                        else:
                            fx, fy, fw, fh = px.item(), py.item(), pw.item(), ph.item()
                            pred_box = (fx - fw / 2, fy - fh / 2, fx + fw / 2, fy + fh / 2)
                            ious = [_iou_floats(pred_box, g) for g in gt_boxes_of_image[b]]
                            if max(ious, default=0.0) <= ignore_thresh:
                                obj_sum = obj_sum + _bce(conf, 0.0)
                            else:
                                num_ignored += 1
    norm = max(1, num_pos)
    return RefResult(
        loss=(box_sum + obj_sum + cls_sum) / norm,
        box=box_sum / norm,
        obj=obj_sum / norm,
        cls=cls_sum / norm,
        num_pos=num_pos,
        num_ignored=num_ignored,
    )


# ----------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------


def _make_loss(img_size: tuple[int, int], **kwargs: float) -> tuple[YOLOLoss, list[list[float]]]:
    anchors = scale_anchors(ANCHORS_416, img_size).double()
    loss = YOLOLoss(anchors, masks=MASKS, num_classes=NUM_CLASSES, strides=STRIDES, **kwargs)
    return loss, anchors.tolist()


def _feature_sizes(img_size: tuple[int, int]) -> list[tuple[int, int]]:
    return [(img_size[0] // s, img_size[1] // s) for s in STRIDES]


def _random_outputs(gen: torch.Generator, batch: int, img_size: tuple[int, int]) -> list[torch.Tensor]:
    return [
        torch.randn(batch, 3 * (5 + NUM_CLASSES), h, w, generator=gen, dtype=torch.float64)
        for h, w in _feature_sizes(img_size)
    ]


def _random_targets(gen: torch.Generator, batch: int) -> torch.Tensor:
    """0-8 boxes per image, image 0 always empty (when batch > 1), border boxes, one collision."""
    rows: list[list[float]] = []
    for b in range(batch):
        n = 0 if (b == 0 and batch > 1) else int(torch.randint(1, 9, (1,), generator=gen))
        for _ in range(n):
            cls = float(torch.randint(0, NUM_CLASSES, (1,), generator=gen))
            cx, cy = torch.rand(2, generator=gen, dtype=torch.float64).tolist()
            w, h = (0.03 + 0.9 * torch.rand(2, generator=gen, dtype=torch.float64)).tolist()
            rows.append([float(b), cls, cx, cy, w, h])
    last = batch - 1
    # boxes at the image border (clamped cells)
    rows.append([float(last), 0.0, 1.0, 0.0, 0.5, 0.4])
    rows.append([float(last), 1.0, 0.0, 1.0, 0.2, 0.7])
    # a collision: same image, same size (same best anchor), centres in the same cell, other class
    first = rows[-1]
    rows.append([first[0], 2.0, 0.01, 0.99, 0.2, 0.7])
    return torch.tensor(rows, dtype=torch.float64)


def _run_both(
    outputs: list[torch.Tensor],
    targets: torch.Tensor,
    img_size: tuple[int, int],
    **kwargs: float,
) -> tuple[tuple[torch.Tensor, dict[str, torch.Tensor]], list[torch.Tensor], RefResult, list[torch.Tensor]]:
    """Loss and gradients from the module and from the reference, on separate leaves."""
    module, anchors = _make_loss(img_size, **kwargs)
    leaves = [o.clone().requires_grad_(True) for o in outputs]
    built = module.build_targets(targets, outputs[0].shape[0], _feature_sizes(img_size), img_size)
    result = module(leaves, built)
    result[0].backward()
    ref_leaves = [o.clone().requires_grad_(True) for o in outputs]
    ref = reference_loss(ref_leaves, targets, anchors, MASKS, STRIDES, NUM_CLASSES, img_size, **kwargs)
    ref.loss.backward()
    return result, [leaf.grad for leaf in leaves], ref, [leaf.grad for leaf in ref_leaves]


# ----------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------

RANDOM_CASES = [
    # seed, batch, (H, W), label smoothing, ignore threshold
    (0, 1, (64, 64), 0.0, 0.5),
    (1, 2, (64, 96), 0.0, 0.5),
    (2, 3, (96, 64), 0.1, 0.5),
    (3, 4, (64, 64), 0.0, 0.5),
    (4, 4, (96, 96), 0.05, 0.3),
    (5, 2, (64, 64), 0.0, 0.7),
]


@pytest.mark.parametrize(("seed", "batch", "img_size", "smoothing", "thresh"), RANDOM_CASES)
def test_matches_reference(
    seed: int, batch: int, img_size: tuple[int, int], smoothing: float, thresh: float
) -> None:
    gen = torch.Generator().manual_seed(seed)
    outputs = _random_outputs(gen, batch, img_size)
    targets = _random_targets(gen, batch)
    (loss, parts), grads, ref, ref_grads = _run_both(
        outputs, targets, img_size, label_smoothing=smoothing, ignore_thresh=thresh
    )
    assert loss.dtype == torch.float64
    assert ref.num_pos > 0
    assert int(parts["num_pos"]) == ref.num_pos
    torch.testing.assert_close(loss, ref.loss.detach(), rtol=1e-5, atol=0.0)
    for name in ("box", "obj", "cls"):
        torch.testing.assert_close(parts[name], getattr(ref, name).detach(), rtol=1e-5, atol=0.0)
    for grad, ref_grad in zip(grads, ref_grads):
        torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-10)


def test_random_cases_exercise_ignore_branch() -> None:
    """The seed-3 case of RANDOM_CASES has ignored slots, so the comparison covers that branch."""
    gen = torch.Generator().manual_seed(3)
    img_size = (64, 64)
    outputs = _random_outputs(gen, 4, img_size)
    targets = _random_targets(gen, 4)
    _, anchors = _make_loss(img_size)
    ref = reference_loss(outputs, targets, anchors, MASKS, STRIDES, NUM_CLASSES, img_size)
    assert ref.num_ignored > 0


def test_collision_later_row_wins() -> None:
    img_size = (64, 64)
    module, _ = _make_loss(img_size)
    # 12 x 12 px boxes: best shape IoU with anchor 3 (81 x 82 at 416 = 12.46 x 12.62 px, IoU 0.916),
    # which both heads use (slot 0 of head 0, slot 2 of head 1). Rows 0 and 1 share image 0 and
    # their cell in both heads: (col 0, row 0) of the 2 x 2 grid, (col 1, row 1) of the 4 x 4 grid.
    targets = torch.tensor(
        [
            [0.0, 0.0, 0.30, 0.30, 0.1875, 0.1875],
            [0.0, 2.0, 0.45, 0.40, 0.1875, 0.1875],
            [1.0, 1.0, 0.30, 0.30, 0.1875, 0.1875],
        ],
        dtype=torch.float64,
    )
    built = module.build_targets(targets, 2, _feature_sizes(img_size), img_size)
    head0, head1 = built.heads
    # flat index = ((image * 3 + slot) * h + row) * w + col; image 0 keeps row 1 (class 2)
    assert head0.pos_index.tolist() == [0, ((1 * 3 + 0) * 2 + 0) * 2 + 0]
    assert head0.cls.tolist() == [2, 1]
    assert head1.pos_index.tolist() == [((0 * 3 + 2) * 4 + 1) * 4 + 1, ((1 * 3 + 2) * 4 + 1) * 4 + 1]
    assert head1.cls.tolist() == [2, 1]
    # row 1's box in pixels: centre (28.8, 25.6), half size 6
    expected_box = torch.tensor([22.8, 19.6, 34.8, 31.6], dtype=torch.float64)
    torch.testing.assert_close(head0.box_xyxy[0], expected_box)
    torch.testing.assert_close(head1.box_xyxy[0], expected_box)
    torch.testing.assert_close(head1.box_weight, torch.full((2,), 2.0 - 0.1875**2, dtype=torch.float64))
    assert int(built.num_pos) == 4
    assert int(head0.pos_mask.sum()) == 2 and int(head1.pos_mask.sum()) == 2
    assert bool(head1.pos_mask[0, 2, 1, 1]) and bool(head1.pos_mask[1, 2, 1, 1])
    # all three boxes stay in the ignore-test set
    assert built.gt_valid.tolist() == [[True, True], [True, False]]

    gen = torch.Generator().manual_seed(11)
    outputs = _random_outputs(gen, 2, img_size)
    (loss, _), grads, ref, ref_grads = _run_both(outputs, targets, img_size)
    assert ref.num_pos == 4
    torch.testing.assert_close(loss, ref.loss.detach(), rtol=1e-5, atol=0.0)
    for grad, ref_grad in zip(grads, ref_grads):
        torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-10)


def test_anchor_ties_go_to_lowest_index() -> None:
    anchors = [[8.0, 8.0], [16.0, 16.0], [16.0, 16.0], [32.0, 32.0]]
    module = YOLOLoss(anchors, masks=((2, 3), (0, 1)), num_classes=2, strides=(32, 16))
    targets = torch.tensor([[0.0, 1.0, 0.5, 0.5, 0.25, 0.25]])  # 16 x 16 px on 64 x 64
    built = module.build_targets(targets, 1, [(2, 2), (4, 4)], (64, 64))
    assert built.heads[0].pos_index.numel() == 0
    # anchor 1 is slot 1 of head 1; cell (2, 2) of the 4 x 4 grid
    assert built.heads[1].pos_index.tolist() == [(1 * 4 + 2) * 4 + 2]


SINGLE_BOX = torch.tensor([[0.0, 1.0, 0.40625, 0.40625, 0.8, 0.75]], dtype=torch.float64)


def _single_box_setup() -> tuple[YOLOLoss, YOLOTargets, list[torch.Tensor], int]:
    """One large box (best anchor 5, head 0 only) and head-1 logits that reproduce it.

    Returns the loss, built targets, outputs and the head-1 channel of the objectness
    logit of the slot whose prediction matches the box.
    """
    img_size = (64, 64)
    module, anchors = _make_loss(img_size)
    # 0.8 x 0.75 of the image = 51.2 x 48 px: best anchor 5 (52.9 x 49.1 px), head 0 only.
    built = module.build_targets(SINGLE_BOX, 1, _feature_sizes(img_size), img_size)
    assert int(built.num_pos) == 1 and built.heads[1].pos_index.numel() == 0
    outputs = [torch.zeros(1, 24, 2, 2, dtype=torch.float64), torch.zeros(1, 24, 4, 4, dtype=torch.float64)]
    # head 1, slot 2 (anchor 3, 12.46 x 12.62 px) at cell (1, 1): centre (24, 24) = box centre 26 px
    # is close; its size grows to the box's by t_w = log(51.2 / a_w), t_h = log(48 / a_h).
    a_w, a_h = anchors[3]
    outputs[1][0, 2 * 8 + 2, 1, 1] = math.log(51.2 / a_w)
    outputs[1][0, 2 * 8 + 3, 1, 1] = math.log(48.0 / a_h)
    return module, built, outputs, 2 * 8 + 4


def test_ignored_prediction_gives_no_negative_loss() -> None:
    module, built, outputs, obj_channel = _single_box_setup()
    values = []
    for t_obj in (-3.0, 0.0, 4.0):
        head1 = outputs[1].clone()
        head1[0, obj_channel, 1, 1] = t_obj
        leaves = [outputs[0].clone().requires_grad_(True), head1.requires_grad_(True)]
        loss, parts = module(leaves, built)
        loss.backward()
        assert leaves[1].grad is not None
        assert leaves[1].grad[0, obj_channel, 1, 1].item() == 0.0
        values.append(parts["obj"])
    # the ignored slot's objectness does not enter the loss
    torch.testing.assert_close(values[0], values[1], rtol=0.0, atol=0.0)
    torch.testing.assert_close(values[0], values[2], rtol=0.0, atol=0.0)

    # with ignore_thresh = 1 nothing is ignored: the slot is a negative, BCE(sigmoid(t), 0) = softplus(t)
    strict = YOLOLoss(module.anchors.double(), masks=MASKS, num_classes=NUM_CLASSES, strides=STRIDES, ignore_thresh=1.0)
    head1 = outputs[1].clone()
    head1[0, obj_channel, 1, 1] = 4.0
    _, parts_hi = strict([outputs[0], head1], built)
    head1[0, obj_channel, 1, 1] = 0.0
    _, parts_lo = strict([outputs[0], head1], built)
    expected = math.log1p(math.exp(4.0)) - math.log(2.0)
    assert (parts_hi["obj"] - parts_lo["obj"]).item() == pytest.approx(expected, rel=1e-12)


def test_single_box_hand_checked_terms() -> None:
    """All logits zero except the matching slot: objectness and class terms by hand."""
    module, built, outputs, _ = _single_box_setup()
    loss, parts = module(outputs, built)
    # every slot has t_obj = 0 -> BCE = log 2 whether the target is 1 or 0; all 12 + 48 slots count
    # except the ignored ones (at least the matching head-1 slot), counted by the reference.
    anchors = module.anchors.double().tolist()
    ref = reference_loss(outputs, SINGLE_BOX, anchors, MASKS, STRIDES, NUM_CLASSES, (64, 64))
    assert ref.num_ignored >= 1
    counted = 12 + 48 - ref.num_ignored  # the positive (BCE to 1) + the negatives (BCE to 0)
    assert parts["obj"].item() == pytest.approx(counted * math.log(2.0), rel=1e-12)
    # class logits all zero: 3 classes x log 2 for the single positive
    assert parts["cls"].item() == pytest.approx(3 * math.log(2.0), rel=1e-12)
    assert int(parts["num_pos"]) == 1
    torch.testing.assert_close(loss, parts["box"] + parts["obj"] + parts["cls"], rtol=1e-12, atol=0.0)


def test_no_positives_is_finite() -> None:
    img_size = (64, 64)
    module, _ = _make_loss(img_size)
    gen = torch.Generator().manual_seed(7)
    outputs = [o.requires_grad_(True) for o in _random_outputs(gen, 2, img_size)]

    empty = module.build_targets(torch.zeros(0, 6, dtype=torch.float64), 2, _feature_sizes(img_size), img_size)
    loss, parts = module(outputs, empty)
    loss.backward()
    assert int(parts["num_pos"]) == 0
    assert parts["box"].item() == 0.0 and parts["cls"].item() == 0.0
    # every slot is a negative, divided by max(1, 0) = 1: sum of softplus(t_obj)
    expected = sum(
        torch.nn.functional.softplus(o.detach().reshape(2, 3, 8, *o.shape[-2:])[:, :, 4]).sum() for o in outputs
    )
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-12, atol=0.0)
    assert all(bool(torch.isfinite(o.grad).all()) for o in outputs if o.grad is not None)

    # boxes exist but all pick anchor 0, which no head uses: no positives, boxes still ignore
    tiny = torch.tensor([[0.0, 0.0, 0.5, 0.5, 0.02, 0.03], [1.0, 1.0, 0.2, 0.7, 0.02, 0.02]], dtype=torch.float64)
    outputs2 = [o.detach().clone() for o in outputs]
    (loss2, parts2), grads2, ref2, ref_grads2 = _run_both(outputs2, tiny, img_size)
    assert int(parts2["num_pos"]) == 0 and ref2.num_pos == 0
    assert bool(torch.isfinite(loss2))
    torch.testing.assert_close(loss2, ref2.loss.detach(), rtol=1e-5, atol=0.0)
    for grad, ref_grad in zip(grads2, ref_grads2):
        assert bool(torch.isfinite(grad).all())
        torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-10)


def test_targets_built_once_are_reusable() -> None:
    img_size = (64, 96)
    module, _ = _make_loss(img_size)
    gen = torch.Generator().manual_seed(5)
    targets = _random_targets(gen, 3)
    built = module.build_targets(targets, 3, _feature_sizes(img_size), img_size)
    for _ in range(2):
        outputs = _random_outputs(gen, 3, img_size)
        loss_reused, parts_reused = module(outputs, built)
        rebuilt = module.build_targets(targets, 3, _feature_sizes(img_size), img_size)
        loss_rebuilt, parts_rebuilt = module(outputs, rebuilt)
        torch.testing.assert_close(loss_reused, loss_rebuilt, rtol=0.0, atol=0.0)
        for name in ("box", "obj", "cls", "num_pos"):
            torch.testing.assert_close(parts_reused[name], parts_rebuilt[name], rtol=0.0, atol=0.0)


def test_parts_are_detached_and_sum_to_loss() -> None:
    img_size = (64, 64)
    module, _ = _make_loss(img_size)
    gen = torch.Generator().manual_seed(9)
    outputs = [o.requires_grad_(True) for o in _random_outputs(gen, 2, img_size)]
    built = module.build_targets(_random_targets(gen, 2), 2, _feature_sizes(img_size), img_size)
    loss, parts = module(outputs, built)
    assert loss.dim() == 0 and loss.requires_grad
    assert set(parts) == {"box", "obj", "cls", "num_pos"}
    for value in parts.values():
        assert value.dim() == 0 and not value.requires_grad
    torch.testing.assert_close(loss.detach(), parts["box"] + parts["obj"] + parts["cls"], rtol=1e-12, atol=0.0)


def test_low_precision_outputs_computed_in_float32() -> None:
    img_size = (64, 64)
    module, _ = _make_loss(img_size)
    gen = torch.Generator().manual_seed(4)
    outputs = [o.to(torch.bfloat16) for o in _random_outputs(gen, 2, img_size)]
    targets = _random_targets(gen, 2).float()
    built = module.build_targets(targets, 2, _feature_sizes(img_size), img_size)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss_bf16, parts = module(outputs, built)
    assert loss_bf16.dtype == torch.float32 and parts["obj"].dtype == torch.float32
    loss_f32, _ = module([o.float() for o in outputs], built)
    torch.testing.assert_close(loss_bf16, loss_f32, rtol=1e-6, atol=0.0)


def test_build_targets_rejects_bad_input() -> None:
    img_size = (64, 64)
    module, _ = _make_loss(img_size)
    sizes = _feature_sizes(img_size)
    good = torch.tensor([[0.0, 1.0, 0.5, 0.5, 0.2, 0.2]])
    with pytest.raises(ValueError, match=r"\(M, 6\)"):
        module.build_targets(torch.zeros(2, 5), 1, sizes, img_size)
    with pytest.raises(ValueError, match="batch index"):
        module.build_targets(torch.tensor([[1.0, 1.0, 0.5, 0.5, 0.2, 0.2]]), 1, sizes, img_size)
    with pytest.raises(ValueError, match="class"):
        module.build_targets(torch.tensor([[0.0, 3.0, 0.5, 0.5, 0.2, 0.2]]), 1, sizes, img_size)
    with pytest.raises(ValueError, match=r"size \(w, h\)"):
        module.build_targets(torch.tensor([[0.0, 1.0, 0.5, 0.5, 0.0, 0.2]]), 1, sizes, img_size)
    with pytest.raises(ValueError, match="centre"):
        module.build_targets(torch.tensor([[0.0, 1.0, 1.5, 0.5, 0.1, 0.2]]), 1, sizes, img_size)
    with pytest.raises(ValueError, match="does not cover"):
        module.build_targets(good, 1, [(3, 3), (4, 4)], img_size)
    built = module.build_targets(good, 1, sizes, img_size)
    with pytest.raises(ValueError, match="head 1 output"):
        module([torch.zeros(1, 24, 2, 2), torch.zeros(1, 24, 5, 5)], built)
    with pytest.raises(ValueError, match="masks"):
        YOLOLoss(ANCHORS_416, masks=((3, 4, 5),), strides=(32, 16))
    with pytest.raises(ValueError, match="distinct"):
        YOLOLoss(ANCHORS_416, masks=((3, 3, 5), (1, 2, 6)))


@pytest.mark.parametrize("t", [-30.0, -17.0, 30.0])
def test_box_loss_stays_finite_for_extreme_box_sizes(t: float) -> None:
    """A positive whose tw = th = t: at -17 and below its box is far below a pixel (its corners coincide
    in float32), at +30 it is 1e13 times its anchor; loss and gradients must stay finite."""
    from torchvision.ops import box_convert, complete_box_iou_loss

    img = 128
    loss_fn = YOLOLoss(scale_anchors(ANCHORS_416, img), MASKS, NUM_CLASSES, strides=STRIDES)
    targets = torch.tensor([[0, 1, 0.4, 0.55, 0.3, 0.25]])
    built = loss_fn.build_targets(targets, 1, loss_fn.grid_sizes((img, img)), (img, img))
    outs = [torch.zeros(1, 3 * (5 + NUM_CLASSES), img // s, img // s) for s in STRIDES]
    head = next(k for k, h in enumerate(built.heads) if h.pos_index.numel())
    flat = outs[head].view(1, 3, 5 + NUM_CLASSES, img // STRIDES[head], img // STRIDES[head]).permute(0, 1, 3, 4, 2)
    slot = flat.reshape(-1, 5 + NUM_CLASSES)  # a view: writing it writes the head output
    slot[built.heads[head].pos_index, 2:4] = t
    outs = [o.requires_grad_() for o in outs]
    loss, parts = loss_fn(outs, built)
    assert torch.isfinite(loss) and torch.isfinite(parts["box"])
    loss.backward()
    assert all(torch.isfinite(o.grad).all() for o in outs)
    # equal to torchvision's CIoU loss where that is finite
    if t > -17:
        from spyolo.loss.yolo import ciou_loss

        pred = torch.tensor([[50.0, 70.0, 30.0 * math.exp(min(t, 5.0)), 20.0]])
        gt = torch.tensor([[40.0, 60.0, 80.0, 85.0]])
        torch.testing.assert_close(ciou_loss(pred, gt), complete_box_iou_loss(box_convert(pred, "cxcywh", "xyxy"), gt),
                                   rtol=1e-5, atol=1e-6)
