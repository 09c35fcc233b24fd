"""Detection transforms keep boxes on their objects; letterbox mapping and its inverse."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from spyolo.data.transforms import (
    Mosaic,
    build_eval_transform,
    build_train_transform,
    letterbox_params,
    map_boxes,
    unmap_boxes,
)

# Objects as pixel rectangles [x0, x1) x [y0, y1) of a 90 x 120 (h x w) image; the
# continuous box of each is exactly (x0, y0, x1, y1). Mask id = label = index + 1.
H, W = 90, 120
RECTS = [(5, 10, 45, 50), (60, 4, 112, 30), (70, 55, 100, 88)]
COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 230)]


def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    image = np.full((H, W, 3), 90, np.uint8)
    mask = np.zeros((H, W), np.uint8)
    for k, ((x0, y0, x1, y1), colour) in enumerate(zip(RECTS, COLOURS), start=1):
        image[y0:y1, x0:x1] = colour
        mask[y0:y1, x0:x1] = k
    boxes = np.array(RECTS, np.float32)
    labels = np.arange(1, len(RECTS) + 1)
    return image, mask, boxes, labels


def mask_box(mask: np.ndarray, k: int) -> np.ndarray | None:
    """Tight continuous box of the pixels with id k, or None."""
    ys, xs = np.nonzero(mask == k)
    if len(xs) == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def check_boxes_on_objects(out: dict, size: int, tol: float = 1.0) -> int:
    """Every output box tightly bounds its object's mask pixels; returns #boxes kept."""
    assert out["image"].shape == (size, size, 3) and out["image"].dtype == np.uint8
    assert out["mask"].shape == (size, size)
    boxes, labels = out["bboxes"], out["labels"]
    assert boxes.dtype == np.float32 and boxes.shape == (len(labels), 4)
    assert len(set(labels.tolist())) == len(labels)
    for box, label in zip(boxes, labels):
        expected = mask_box(out["mask"], int(label))
        assert expected is not None, f"box {box} kept for label {label} but its object is not visible"
        np.testing.assert_allclose(box, expected, atol=tol)
        assert np.all(box >= 0) and np.all(box <= size)
        assert box[2] - box[0] >= 2 and box[3] - box[1] >= 2
    for k in range(1, len(RECTS) + 1):  # clearly visible objects keep their box
        visible = mask_box(out["mask"], k)
        if visible is not None and min(visible[2] - visible[0], visible[3] - visible[1]) >= 4:
            assert k in labels.tolist(), f"object {k} visible at {visible} but its box was dropped"
    return len(labels)


def test_train_transform_keeps_boxes_on_objects() -> None:
    image, mask, boxes, labels = scene()
    transform = build_train_transform(96, seed=0)
    kept, flipped, sizes = [], 0, set()
    for seed in range(12):
        transform.set_seed(seed)
        out = transform(image=image, bboxes=boxes, labels=labels, mask=mask)
        kept.append(check_boxes_on_objects(out, 96))
        assert out["letterbox"] is None
        visible = mask_box(out["mask"], 1)
        if visible is not None:
            sizes.add(round(float(visible[2] - visible[0])))
        centres = {int(k): mask_box(out["mask"], int(k)) for k in out["labels"]}
        if 1 in centres and 2 in centres:
            flipped += int(centres[1][0] > centres[2][0])  # object 1 is left of object 2 unless flipped
    assert max(kept) == 3 and len(sizes) > 3  # the seeds do vary the geometry
    assert flipped > 0


def test_train_transform_is_reproducible_for_a_seed() -> None:
    image, mask, boxes, labels = scene()
    a = build_train_transform(64, seed=5)
    b = build_train_transform(64, seed=5)
    runs_a = [a(image=image, bboxes=boxes, labels=labels) for _ in range(3)]
    runs_b = [b(image=image, bboxes=boxes, labels=labels) for _ in range(3)]
    for x, y in zip(runs_a, runs_b):
        np.testing.assert_array_equal(x["image"], y["image"])
        np.testing.assert_array_equal(x["bboxes"], y["bboxes"])
    assert not np.array_equal(runs_a[0]["image"], runs_a[1]["image"])
    a.set_seed(5)
    np.testing.assert_array_equal(a(image=image, bboxes=boxes, labels=labels)["image"], runs_b[0]["image"])


def test_train_canvas_is_grey_where_the_image_does_not_reach() -> None:
    image, _, boxes, labels = scene()
    # Scale 0.25 of a 64 canvas: the image is at most 16 px wide, the rest is the fill value.
    transform = build_train_transform(64, scale=(0.25, 0.25), hue=0, saturation=0, value=0, seed=1)
    out = transform(image=image, bboxes=boxes, labels=labels)
    grey = np.all(out["image"] == 128, axis=2)
    assert grey.sum() >= 64 * 64 - 16 * 16


def test_train_transform_empty_boxes() -> None:
    image, _, _, _ = scene()
    out = build_train_transform(64, seed=0)(image=image, bboxes=np.zeros((0, 4)), labels=[])
    assert out["bboxes"].shape == (0, 4) and out["labels"].shape == (0,)


@pytest.mark.parametrize("mode", ["stretch", "letterbox"])
def test_eval_transform_keeps_boxes_on_objects(mode: str) -> None:
    image, mask, boxes, labels = scene()
    out = build_eval_transform(80, mode)(image=image, bboxes=boxes, labels=labels, mask=mask)
    assert check_boxes_on_objects(out, 80) == 3
    assert out["labels"].tolist() == [1, 2, 3]
    letterbox = letterbox_params(H, W, 80) if mode == "letterbox" else None
    assert out["letterbox"] == letterbox
    np.testing.assert_allclose(out["bboxes"], map_boxes(boxes, (H, W), 80, letterbox), atol=1e-4)
    if mode == "letterbox":  # 90x120 -> 60x80 centred: 10 grey rows above and below
        assert letterbox == (80 / 120, 0, 10)
        assert np.all(out["image"][:10] == 128) and np.all(out["image"][70:] == 128)
        assert not np.all(out["image"][10:70] == 128)


def test_letterbox_params_hand_values() -> None:
    assert letterbox_params(30, 40, 64) == (1.6, 0, 8)  # 48 x 64 -> pad 8 rows
    assert letterbox_params(48, 80, 64) == (0.8, 0, 13)  # 38.4 rounds to 38 -> pad (64 - 38) // 2
    assert letterbox_params(100, 50, 416) == (4.16, 104, 0)  # 416 x 208 -> pad 104 columns
    with pytest.raises(ValueError):
        letterbox_params(0, 10, 64)


def test_unmap_hand_values_and_clipping() -> None:
    # Stretch 30x40 -> 64x64: x * 40/64, y * 30/64.
    np.testing.assert_allclose(unmap_boxes([[16, 32, 48, 64]], (30, 40), 64, None), [[10, 15, 30, 30]])
    # Letterbox 30x40 -> 64: scale 1.6, pad_y 8: (16, 16, 48, 48) -> (10, 5, 30, 25).
    lb = letterbox_params(30, 40, 64)
    np.testing.assert_allclose(unmap_boxes([[16, 16, 48, 48]], (30, 40), 64, lb), [[10, 5, 30, 25]], atol=1e-5)
    # Boxes reaching into the padding are clipped to the original image.
    np.testing.assert_allclose(unmap_boxes([[-5, 0, 70, 60]], (30, 40), 64, lb), [[0, 0, 40, 30]])


@pytest.mark.parametrize("orig", [(90, 120), (375, 500), (500, 333), (37, 211), (416, 416)])
@pytest.mark.parametrize("letterbox_mode", [False, True])
def test_unmap_inverts_map(orig: tuple[int, int], letterbox_mode: bool) -> None:
    rng = np.random.default_rng(0)
    h, w = orig
    xy = rng.uniform(0, 1, size=(20, 4)) * [w, h, w, h]
    boxes = np.concatenate([np.minimum(xy[:, :2], xy[:, 2:]), np.maximum(xy[:, :2], xy[:, 2:])], axis=1)
    lb = letterbox_params(h, w, 416) if letterbox_mode else None
    mapped = map_boxes(boxes, orig, 416, lb)
    assert mapped.min() >= 0 and mapped.max() <= 416
    np.testing.assert_allclose(unmap_boxes(mapped, orig, 416, lb), boxes, atol=2e-3)


def test_mosaic_boxes_follow_their_images() -> None:
    size = 96
    samples = []
    for k in range(4):  # each image: background 0, one object of id k+1 (in all channels)
        h, w = 60 + 10 * k, 80 - 8 * k
        img = np.zeros((h, w, 3), np.uint8)
        x0, y0, x1, y1 = 10 + k, 8, w - 12, h - 9 - k
        img[y0:y1, x0:x1] = k + 1
        samples.append((img, np.array([[x0, y0, x1, y1]], np.float32), np.array([k + 1])))
    mosaic = Mosaic(size, fill=0, interpolation=cv2.INTER_NEAREST_EXACT)
    total = 0
    for seed in range(6):
        image, boxes, labels = mosaic(samples, np.random.default_rng(seed))
        assert image.shape == (size, size, 3) and image.dtype == np.uint8
        assert boxes.shape == (len(labels), 4) and boxes.min() >= 0 and boxes.max() <= size
        for box, label in zip(boxes, labels):
            np.testing.assert_allclose(box, mask_box(image[:, :, 0], int(label)), atol=1.0)
        ids = {int(v) for v in np.unique(image)} - {0}
        assert ids <= {1, 2, 3, 4}
        total += len(labels)
    assert total >= 12  # most objects survive


def test_mosaic_through_the_train_transform() -> None:
    image, _, boxes, labels = scene()
    transform = build_train_transform(64, seed=3)
    out = transform.apply_mosaic([(image, boxes, labels)] * 4)
    assert out["image"].shape == (64, 64, 3) and out["letterbox"] is None
    assert out["bboxes"].shape == (len(out["labels"]), 4) and len(out["labels"]) > 0
    with pytest.raises(ValueError, match="no mosaic step"):
        build_eval_transform(64).apply_mosaic([(image, boxes, labels)] * 4)


def test_brightness_shift_and_contrast_are_off_by_default_and_shift_dark_images() -> None:
    """data.brightness_shift adds U(-b, b) x 255 after the colour jitter; the default pipeline is the release's."""
    import albumentations as A

    default = build_train_transform(64, seed=0)
    assert not any(isinstance(op, A.RandomBrightnessContrast) for op in default.pipeline.transforms)
    shifted = build_train_transform(64, scale=(1.0, 1.0), aspect_jitter=0.0, hue=0, saturation=0, value=0,
                                    brightness_shift=0.3, seed=0)
    dark = np.full((64, 64, 3), 10, np.uint8)
    means = [float(shifted(image=dark, bboxes=np.zeros((0, 4)), labels=[])["image"].mean()) for _ in range(40)]
    assert max(means) > 40 and min(means) < 9  # lighter and darker backgrounds, not only 10 x a factor
    assert max(means) <= 10 + 0.3 * 255 + 1
