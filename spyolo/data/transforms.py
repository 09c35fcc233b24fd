"""Detection transforms (albumentations 2.x, bounding-box safe).

Every transform built here is a :class:`DetectionTransform`: called as
``t(image=, bboxes=, labels=[, mask=])`` with an RGB uint8 (H, W, 3) image and boxes
in *continuous* pixel coordinates ``(X1, Y1, X2, Y2)`` (0-based pixel edges, see
:mod:`spyolo.data.voc`), it returns a dict with

- ``"image"``: RGB uint8 (img_size, img_size, 3),
- ``"bboxes"``: float32 (N, 4), continuous pixel coordinates of the output image,
- ``"labels"``: int64 (N,), the labels of the boxes kept,
- ``"letterbox"``: ``(scale, pad_x, pad_y)`` for the letterbox eval mode, else ``None``,
- ``"mask"``: the transformed mask, only when a mask was given (nearest interpolation,
  fill 0); it receives exactly the image's geometric transform.

The division by 255 and the HWC -> CHW change are done by the dataset, not here.

Training (:func:`build_train_transform`), as in the SPYv4 release:
random aspect ``new_ar = w/h * U(1-j, 1+j) / U(1-j, 1+j)``, random size (the longer
side of the new aspect is ``U(scale) * img_size``), random placement on a grey
``img_size x img_size`` canvas (parts outside are cropped, boxes clipped, boxes whose
visible width or height is below 2 pixels dropped), horizontal flip, then colour
jitter (multiplicative saturation and value/brightness, additive hue, in random order;
albumentations ``ColorJitter``). Optional 4-image :class:`Mosaic`.

Evaluation (:func:`build_eval_transform`): ``"stretch"`` resizes to
``img_size x img_size`` (the release's protocol); ``"letterbox"`` keeps the aspect,
resizing to ``(round(h * scale), round(w * scale))`` with ``scale = img_size / max(h, w)``
and pasting at ``(pad_x, pad_y)`` on a grey canvas (see :func:`letterbox_params`).
:func:`map_boxes` / :func:`unmap_boxes` convert boxes between original and network
input pixels for both modes.

Reproducibility: albumentations draws from its own generators, not from numpy's or
Python's global state. A :class:`DetectionTransform` owns one numpy and one Python
generator shared by all its steps; :meth:`DetectionTransform.set_seed` re-seeds them
(the data loader does this per worker, see :mod:`spyolo.data.loader`). For a fixed
seed, the same sequence of calls gives the same outputs. Not deterministic: a
transform built with ``seed=None`` and never re-seeded; results across different
albumentations/OpenCV versions (interpolation details may differ).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Literal

import albumentations as A
import cv2
import numpy as np
from albumentations.core.type_definitions import Targets

from spyolo.utils.choices import EVAL_INTERPOLATION_MODES, EVAL_RESIZE_MODES

#: Boxes narrower or shorter than this (in output pixels) after clipping are dropped
#: by the training transforms.
MIN_BOX_SIZE = 2.0

EvalMode = Literal["stretch", "letterbox"]  # one of EVAL_RESIZE_MODES (spyolo.utils.choices)


# ------------------------------------------------------------------ geometry


def letterbox_params(h: int, w: int, img_size: int) -> tuple[float, int, int]:
    """Letterbox parameters ``(scale, pad_x, pad_y)`` for an ``h x w`` image.

    The image is resized to ``(new_h, new_w) = (max(1, round(h * scale)),
    max(1, round(w * scale)))`` with ``scale = img_size / max(h, w)`` and pasted with
    its top-left corner at ``(pad_x, pad_y) = ((img_size - new_w) // 2,
    (img_size - new_h) // 2)``. (Same rounding as albumentations' ``LongestMaxSize``
    and ``PadIfNeeded(position="center")``, which implement it.)
    """
    if h <= 0 or w <= 0 or img_size <= 0:
        raise ValueError(f"letterbox_params needs positive sizes, got h={h}, w={w}, img_size={img_size}")
    scale = img_size / max(h, w)
    new_h, new_w = _letterbox_size(h, w, scale)
    return scale, (img_size - new_w) // 2, (img_size - new_h) // 2


def _letterbox_size(h: int, w: int, scale: float) -> tuple[int, int]:
    return max(1, round(h * scale)), max(1, round(w * scale))


def _affine(
    orig_size: tuple[int, int], img_size: int, letterbox: tuple[float, int, int] | None
) -> tuple[float, float, float, float]:
    """``(sx, sy, px, py)`` with ``input = orig * s + p`` per axis."""
    h, w = int(orig_size[0]), int(orig_size[1])
    if letterbox is None:
        return img_size / w, img_size / h, 0.0, 0.0
    scale, pad_x, pad_y = letterbox
    new_h, new_w = _letterbox_size(h, w, float(scale))
    return new_w / w, new_h / h, float(pad_x), float(pad_y)


def map_boxes(
    boxes_xyxy: np.ndarray,
    orig_size: tuple[int, int],
    img_size: int,
    letterbox: tuple[float, int, int] | None,
) -> np.ndarray:
    """Map continuous ``(X1, Y1, X2, Y2)`` boxes from original-image pixels to network
    input pixels, exactly as the eval transform moves image content.

    Args:
        boxes_xyxy: (N, 4) boxes in original-image continuous pixels.
        orig_size: ``(h, w)`` of the original image.
        img_size: the square network input size.
        letterbox: ``(scale, pad_x, pad_y)`` from :func:`letterbox_params`, or ``None``
            for the stretch mode.
    """
    sx, sy, px, py = _affine(orig_size, img_size, letterbox)
    out = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4).copy()
    out[:, [0, 2]] = out[:, [0, 2]] * sx + px
    out[:, [1, 3]] = out[:, [1, 3]] * sy + py
    return out.astype(np.float32)


def unmap_boxes(
    boxes_xyxy_continuous_in_input: np.ndarray,
    orig_size: tuple[int, int],
    img_size: int,
    letterbox: tuple[float, int, int] | None,
) -> np.ndarray:
    """Inverse of :func:`map_boxes`: network-input pixels -> original-image pixels.

    The result (float32, (N, 4), continuous pixels) is clipped to the original image
    ``[0, w] x [0, h]``; use :func:`spyolo.data.voc.continuous_to_voc` for VOC
    1-based coordinates.
    """
    h, w = int(orig_size[0]), int(orig_size[1])
    sx, sy, px, py = _affine(orig_size, img_size, letterbox)
    out = np.asarray(boxes_xyxy_continuous_in_input, dtype=np.float64).reshape(-1, 4).copy()
    out[:, [0, 2]] = np.clip((out[:, [0, 2]] - px) / sx, 0.0, w)
    out[:, [1, 3]] = np.clip((out[:, [1, 3]] - py) / sy, 0.0, h)
    return out.astype(np.float32)


def jittered_size(
    h: int,
    w: int,
    canvas: int,
    scale: tuple[float, float],
    aspect_jitter: float,
    rng: np.random.Generator,
) -> tuple[int, int]:
    """Random ``(new_h, new_w)`` of the release's scale/aspect jitter.

    ``new_ar = w / h * U(1-j, 1+j) / U(1-j, 1+j)``, ``s = U(scale)``; the longer side
    of the new aspect is ``int(s * canvas)`` and the other follows from ``new_ar``
    (both at least 1).
    """
    j = aspect_jitter
    new_ar = (w / h) * rng.uniform(1.0 - j, 1.0 + j) / rng.uniform(1.0 - j, 1.0 + j)
    s = rng.uniform(scale[0], scale[1])
    if new_ar < 1.0:
        new_h = int(s * canvas)
        new_w = int(new_h * new_ar)
    else:
        new_w = int(s * canvas)
        new_h = int(new_w / new_ar)
    return max(new_h, 1), max(new_w, 1)


def _paste(canvas: np.ndarray, patch: np.ndarray, dx: int, dy: int) -> None:
    """Paste ``patch`` into ``canvas`` with its top-left corner at (dx, dy), cropping."""
    ch, cw = canvas.shape[:2]
    ph, pw = patch.shape[:2]
    x0, y0 = max(dx, 0), max(dy, 0)
    x1, y1 = min(dx + pw, cw), min(dy + ph, ch)
    if x1 <= x0 or y1 <= y0:
        return
    canvas[y0:y1, x0:x1] = patch[y0 - dy : y1 - dy, x0 - dx : x1 - dx]


def _resize(img: np.ndarray, new_h: int, new_w: int, interpolation: int) -> np.ndarray:
    out = cv2.resize(img, (new_w, new_h), interpolation=interpolation)
    if img.ndim == 3 and out.ndim == 2:  # cv2 drops a single channel axis
        out = out[:, :, None]
    return out


def _canvas_like(img: np.ndarray, size: int, fill: float) -> np.ndarray:
    return np.full((size, size, *img.shape[2:]), fill, dtype=img.dtype)


# ------------------------------------------------------------ train geometry


class RandomScaleAspectPlace(A.DualTransform):
    """The release's scale + aspect jitter + random placement on a grey square canvas.

    The image is resized to :func:`jittered_size` and pasted on a ``size x size``
    canvas filled with ``fill`` at an integer offset ``(dx, dy)`` drawn uniformly so
    that the image is inside the canvas when it fits, and covers it when it does not
    (``dx`` in ``[min(0, size - new_w), max(0, size - new_w)]``). Boxes are scaled and
    shifted by the same amounts; clipping and dropping is left to ``A.BboxParams``.
    """

    _targets = (Targets.IMAGE, Targets.MASK, Targets.BBOXES)

    def __init__(
        self,
        size: int,
        scale: tuple[float, float] = (0.25, 2.0),
        aspect_jitter: float = 0.3,
        fill: float = 128,
        fill_mask: float = 0,
        interpolation: int = cv2.INTER_CUBIC,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must satisfy 0 < min <= max, got {scale}")
        if not 0 <= aspect_jitter < 1:
            raise ValueError(f"aspect_jitter must be in [0, 1), got {aspect_jitter}")
        self.size = int(size)
        self.scale = (float(scale[0]), float(scale[1]))
        self.aspect_jitter = float(aspect_jitter)
        self.fill = fill
        self.fill_mask = fill_mask
        self.interpolation = interpolation

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        h, w = params["shape"][:2]
        new_h, new_w = jittered_size(h, w, self.size, self.scale, self.aspect_jitter, self.random_generator)
        free_x, free_y = self.size - new_w, self.size - new_h
        dx = int(self.random_generator.integers(min(0, free_x), max(0, free_x) + 1))
        dy = int(self.random_generator.integers(min(0, free_y), max(0, free_y) + 1))
        return {"new_h": new_h, "new_w": new_w, "dx": dx, "dy": dy, "src_h": h, "src_w": w}

    def apply(self, img: np.ndarray, new_h: int, new_w: int, dx: int, dy: int, **params: Any) -> np.ndarray:
        canvas = _canvas_like(img, self.size, self.fill)
        _paste(canvas, _resize(img, new_h, new_w, self.interpolation), dx, dy)
        return canvas

    def apply_to_mask(self, mask: np.ndarray, new_h: int, new_w: int, dx: int, dy: int, **params: Any) -> np.ndarray:
        canvas = _canvas_like(mask, self.size, self.fill_mask)
        _paste(canvas, _resize(mask, new_h, new_w, cv2.INTER_NEAREST_EXACT), dx, dy)
        return canvas

    def apply_to_bboxes(
        self, bboxes: np.ndarray, new_h: int, new_w: int, dx: int, dy: int, **params: Any
    ) -> np.ndarray:
        # albumentations passes boxes normalised by the input size and expects them
        # normalised by the output size; extra columns (encoded labels) pass through.
        out = np.array(bboxes, dtype=np.float64, copy=True)
        if out.size:
            out[:, [0, 2]] = (out[:, [0, 2]] * new_w + dx) / self.size
            out[:, [1, 3]] = (out[:, [1, 3]] * new_h + dy) / self.size
        return out.astype(bboxes.dtype, copy=False)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("size", "scale", "aspect_jitter", "fill", "fill_mask", "interpolation")


# -------------------------------------------------------------------- mosaic


class Mosaic:
    """Four training images around a random centre of a square canvas.

    The centre ``(cx, cy)`` is drawn uniformly in ``center_range * img_size``. Each
    image gets the scale/aspect jitter of :func:`jittered_size` (with ``scale``
    relative to ``img_size``) and is placed with one corner on the centre: image 0
    top-left of it, 1 top-right, 2 bottom-left, 3 bottom-right, so that each stays in
    its quadrant; what falls outside the canvas is cropped, the rest of the canvas is
    ``fill``. Boxes are moved with their image, clipped to the canvas, and dropped if
    narrower or shorter than ``min_size`` pixels.
    """

    def __init__(
        self,
        img_size: int,
        center_range: tuple[float, float] = (0.3, 0.7),
        scale: tuple[float, float] = (0.4, 1.0),
        aspect_jitter: float = 0.3,
        fill: float = 128,
        min_size: float = MIN_BOX_SIZE,
        interpolation: int = cv2.INTER_CUBIC,
    ) -> None:
        if not 0.0 <= center_range[0] <= center_range[1] <= 1.0:
            raise ValueError(f"center_range must lie in [0, 1], got {center_range}")
        self.img_size = int(img_size)
        self.center_range = center_range
        self.scale = scale
        self.aspect_jitter = aspect_jitter
        self.fill = fill
        self.min_size = min_size
        self.interpolation = interpolation

    def __call__(
        self,
        samples: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Combine four ``(image RGB uint8, boxes (N,4) continuous, labels (N,))``.

        Returns ``(image (S,S,3) uint8, boxes (M,4) float32 continuous, labels (M,) int64)``.
        """
        if len(samples) != 4:
            raise ValueError(f"Mosaic needs exactly 4 samples, got {len(samples)}")
        size = self.img_size
        cx = int(rng.uniform(*self.center_range) * size)
        cy = int(rng.uniform(*self.center_range) * size)
        canvas = np.full((size, size, 3), self.fill, dtype=np.uint8)
        all_boxes, all_labels = [], []
        for k, (image, boxes, labels) in enumerate(samples):
            h, w = image.shape[:2]
            new_h, new_w = jittered_size(h, w, size, self.scale, self.aspect_jitter, rng)
            dx = cx - new_w if k in (0, 2) else cx
            dy = cy - new_h if k in (0, 1) else cy
            _paste(canvas, _resize(image, new_h, new_w, self.interpolation), dx, dy)
            b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
            b[:, [0, 2]] = b[:, [0, 2]] * (new_w / w) + dx
            b[:, [1, 3]] = b[:, [1, 3]] * (new_h / h) + dy
            all_boxes.append(b)
            all_labels.append(np.asarray(labels, dtype=np.int64).reshape(-1))
        boxes_out = np.clip(np.concatenate(all_boxes), 0.0, size)
        labels_out = np.concatenate(all_labels)
        keep = ((boxes_out[:, 2] - boxes_out[:, 0]) >= self.min_size) & (
            (boxes_out[:, 3] - boxes_out[:, 1]) >= self.min_size
        )
        return canvas, boxes_out[keep].astype(np.float32), labels_out[keep]


# ------------------------------------------------------------ the wrapper


def _bbox_params(min_size: float) -> A.BboxParams:
    return A.BboxParams(
        format="pascal_voc",
        label_fields=["labels"],
        clip=True,
        min_width=min_size,
        min_height=min_size,
    )


class DetectionTransform:
    """A seeded albumentations pipeline with the detection call convention.

    See the module docstring for inputs and outputs. Build with
    :func:`build_train_transform` or :func:`build_eval_transform`.

    Attributes:
        img_size: output side length.
        mode: ``"train"``, ``"stretch"`` or ``"letterbox"``.
        pipeline: the ``A.Compose`` applied to single images.
        mosaic: the :class:`Mosaic` (train mode only).
        post_mosaic: the ``A.Compose`` (flip + colour) applied after a mosaic.
    """

    def __init__(
        self,
        pipeline: A.Compose,
        img_size: int,
        mode: Literal["train", "stretch", "letterbox"],
        mosaic: Mosaic | None = None,
        post_mosaic: A.Compose | None = None,
        seed: int | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.img_size = int(img_size)
        self.mode = mode
        self.mosaic = mosaic
        self.post_mosaic = post_mosaic
        self._rng = np.random.default_rng()
        self.set_seed(seed)

    @property
    def is_train(self) -> bool:
        """True for the training transform (random, supports mosaic)."""
        return self.mode == "train"

    def set_seed(self, seed: int | None) -> None:
        """Re-seed every random draw of this transform (``None``: fresh OS entropy).

        All steps of a pipeline share one numpy and one Python generator, so their
        draws are not correlated (albumentations' own ``set_random_seed`` would give
        each step an identical stream).
        """
        children = np.random.SeedSequence(seed).spawn(3)
        for compose, child in zip((self.pipeline, self.post_mosaic), children[:2]):
            if compose is not None:
                state = child.generate_state(2)
                compose.set_random_state(np.random.default_rng(child), random.Random(int(state[0])))
        self._rng = np.random.default_rng(children[2])

    def _run(self, compose: A.Compose, image: np.ndarray, bboxes: Any, labels: Any, **extra: Any) -> dict[str, Any]:
        boxes = np.asarray(bboxes, dtype=np.float32).reshape(-1, 4)
        lab = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(lab) != len(boxes):
            raise ValueError(f"got {len(boxes)} boxes but {len(lab)} labels")
        out = compose(image=image, bboxes=boxes, labels=lab, **extra)
        result = {
            "image": out["image"],
            "bboxes": np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4),
            "labels": np.asarray(out["labels"], dtype=np.int64).reshape(-1),
            "letterbox": None,
        }
        if "mask" in out:
            result["mask"] = out["mask"]
        return result

    def __call__(
        self, *, image: np.ndarray, bboxes: Any, labels: Any, mask: np.ndarray | None = None
    ) -> dict[str, Any]:
        extra = {} if mask is None else {"mask": mask}
        result = self._run(self.pipeline, image, bboxes, labels, **extra)
        if self.mode == "letterbox":
            h, w = image.shape[:2]
            result["letterbox"] = letterbox_params(h, w, self.img_size)
        return result

    def apply_mosaic(self, samples: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, Any]:
        """Mosaic of four ``(image, boxes, labels)`` samples, then flip + colour jitter."""
        if self.mosaic is None or self.post_mosaic is None:
            raise ValueError(f"this {self.mode!r} transform has no mosaic step")
        image, boxes, labels = self.mosaic(samples, self._rng)
        return self._run(self.post_mosaic, image, boxes, labels)

    def __repr__(self) -> str:
        return f"DetectionTransform(mode={self.mode!r}, img_size={self.img_size}, pipeline={self.pipeline!r})"


def _photometric(hflip: float, hue: float, saturation: float, value: float, contrast: float = 0.0,
                 brightness_shift: float = 0.0) -> list[Any]:
    """Horizontal flip, colour jitter, then (when asked) an additive brightness shift (new instances on
    every call). Without ``brightness_shift`` the pipeline is the release's, draw for draw."""
    ops = [
        A.HorizontalFlip(p=hflip),
        A.ColorJitter(brightness=value, contrast=contrast, saturation=saturation, hue=hue, p=1.0),
    ]
    if brightness_shift > 0:
        ops.append(A.RandomBrightnessContrast(brightness_limit=brightness_shift, contrast_limit=0.0,
                                              brightness_by_max=True, p=1.0))
    return ops


def build_train_transform(
    img_size: int,
    scale: tuple[float, float] = (0.25, 2.0),
    aspect_jitter: float = 0.3,
    hflip: float = 0.5,
    hue: float = 0.1,
    saturation: float = 0.7,
    value: float = 0.4,
    fill: int = 128,
    seed: int | None = None,
    mosaic_scale: tuple[float, float] = (0.4, 1.0),
    contrast: float = 0.0,
    brightness_shift: float = 0.0,
) -> DetectionTransform:
    """The release's training augmentation (see module docstring).

    Args:
        img_size: output side length.
        scale: range of the canvas-relative size of the pasted image.
        aspect_jitter: ``j`` of the aspect jitter ``U(1-j,1+j)/U(1-j,1+j)``.
        hflip: probability of a horizontal flip.
        hue: additive hue shift range, fraction of the hue circle (``[-hue, hue]``).
        saturation: saturation factor range ``[1-saturation, 1+saturation]``.
        value: brightness factor range ``[1-value, 1+value]``.
        contrast: contrast factor range ``[1-contrast, 1+contrast]`` (0: the release's, none).
        brightness_shift: an added brightness ``U(-b, b)`` times the maximum value (255), after the
            colour jitter (0: none): a lighter or darker background, which a factor cannot give a
            dark image.
        fill: grey level of the canvas.
        seed: seed of the transform's generators (``None``: not reproducible until
            :meth:`DetectionTransform.set_seed` is called).
        mosaic_scale: the per-image scale range used by the mosaic step.
    """
    pipeline = A.Compose(
        [
            RandomScaleAspectPlace(img_size, scale=scale, aspect_jitter=aspect_jitter, fill=fill),
            *_photometric(hflip, hue, saturation, value, contrast, brightness_shift),
        ],
        bbox_params=_bbox_params(MIN_BOX_SIZE),
        mask_interpolation=cv2.INTER_NEAREST_EXACT,
    )
    post_mosaic = A.Compose(
        _photometric(hflip, hue, saturation, value, contrast, brightness_shift),
        bbox_params=_bbox_params(MIN_BOX_SIZE),
    )
    mosaic = Mosaic(img_size, scale=mosaic_scale, aspect_jitter=aspect_jitter, fill=fill)
    return DetectionTransform(pipeline, img_size, "train", mosaic=mosaic, post_mosaic=post_mosaic, seed=seed)


_CV2_INTERPOLATION = {"cubic": cv2.INTER_CUBIC, "linear": cv2.INTER_LINEAR}
EVAL_INTERPOLATIONS: dict[str, int] = {name: _CV2_INTERPOLATION[name] for name in EVAL_INTERPOLATION_MODES}
"""Interpolations of the evaluation resize: ``"cubic"`` (the release's bicubic) or ``"linear"``
(bilinear, as Darknet and OpenCV's ``blobFromImage`` resize)."""


def build_eval_transform(
    img_size: int, mode: EvalMode = "stretch", fill: int = 128, interpolation: str = "cubic"
) -> DetectionTransform:
    """Deterministic evaluation resize.

    Args:
        img_size: output side length.
        mode: ``"stretch"`` (resize to ``img_size x img_size``, the release's
            protocol) or ``"letterbox"`` (keep aspect, centre on a grey canvas; the
            output's ``"letterbox"`` entry holds ``(scale, pad_x, pad_y)``).
        fill: grey level of the letterbox padding.
        interpolation: a key of :data:`EVAL_INTERPOLATIONS`.
    """
    if interpolation not in EVAL_INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {list(EVAL_INTERPOLATIONS)}, got {interpolation!r}")
    flag = EVAL_INTERPOLATIONS[interpolation]
    if mode == "stretch":
        steps: list[Any] = [A.Resize(img_size, img_size, interpolation=flag)]
    elif mode == "letterbox":
        steps = [
            A.LongestMaxSize(max_size=img_size, interpolation=flag),
            A.PadIfNeeded(
                min_height=img_size,
                min_width=img_size,
                position="center",
                border_mode=cv2.BORDER_CONSTANT,
                fill=fill,
                fill_mask=0,
            ),
        ]
    else:
        raise ValueError(f"eval mode must be one of {', '.join(EVAL_RESIZE_MODES)}, got {mode!r}")
    pipeline = A.Compose(steps, bbox_params=_bbox_params(0.0), mask_interpolation=cv2.INTER_NEAREST_EXACT)
    return DetectionTransform(pipeline, img_size, mode, seed=0)
