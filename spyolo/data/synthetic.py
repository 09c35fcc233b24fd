"""Synthetic PASCAL-VOC-format detection dataset ("spyolo synthetic shapes").

Real PASCAL VOC is not always available (offline machines, CI), so spyolo ships a
generator for a cluttered shape-detection benchmark written in the exact VOC layout
(``JPEGImages/``, ``Annotations/``, ``ImageSets/Main/``), which every VOC tool of the
project (loader, evaluator, training) reads unchanged.

What the benchmark measures
---------------------------
Detecting objects by **shape** among clutter. There are eight classes
(:data:`SYNTHETIC_CLASSES`): circle, square, triangle, star, hexagon, cross, ring and
arrow. Colour, texture, size, aspect and orientation are drawn from the same
distributions for every class, so none of them identifies the class; only the outline
does (the ring is the only class with a hole).

Generative process (one image)
------------------------------
Every image ``index`` has its own ``numpy`` generator derived from ``(seed, index)``,
so the output does not depend on the order or the number of worker processes.

1. Size: width and height are drawn independently and uniformly in
   ``[min_side, max_side]`` (VOC-like, default 300..500 px).
2. Background: a smooth random colour field (a few random colours on a coarse grid,
   bicubically upsampled) blended with a linear two-colour gradient, plus blurred
   Gaussian noise at a random scale, plus a few random straight lines.
3. Distractors below the objects: ``distractors`` shapes that are *not* classes
   (lumpy blobs, irregular many-vertex polygons, thick arcs, pseudo-text strings and
   scribbles), textured exactly like the objects.
4. Objects: ``objects_per_image`` of them, each of a uniformly chosen class,
   with size ``s`` log-uniform in ``[min_object_size, max_object_frac * min(W, H)]``
   (``s`` is the geometric mean of the un-rotated width and height), aspect
   ``a`` log-uniform in ``aspect_range`` (width ``s*sqrt(a)``, height ``s/sqrt(a)``),
   rotation uniform in [0, 360) degrees, and a random textured fill: a random colour
   pair and one of solid, stripes (random angle and period), checker (random angle and
   period), smooth noise, or linear gradient. Objects are drawn one above the other
   in the order they are placed (a random z-order). With probability
   ``truncation_prob`` an object is placed so that part of it lies outside the image;
   otherwise it lies fully inside and does not touch the border. A placement is
   rejected (and redrawn) if it would leave any earlier object with less than
   ``min_visible_keep`` of its pixels visible; an object that cannot be placed is
   dropped (the first one always fits). The object's colour pair is redrawn (a few
   times) if its mean colour is within ``min_contrast`` (RGB distance) of the mean
   colour of the pixels it covers.
5. Distractors above the objects: each distractor is drawn above the objects with
   probability ``distractor_above_prob`` instead of below them (same visibility
   rule as for objects).
6. Additive Gaussian pixel noise with sigma uniform in ``noise_sigma``, then JPEG.

Annotations and difficulty rules
--------------------------------
* The box is the **full extent** of the object (its pixels as if nothing occluded it),
  clipped to the image, in VOC convention: integer, 1-based, inclusive,
  ``1 <= xmin <= xmax <= W`` and ``1 <= ymin <= ymax <= H``.
* ``truncated = 1`` exactly when the object's full extent leaves the image; since
  untruncated objects never touch the border, ``truncated = 1`` if and only if the box
  touches the image border.
* ``difficult = 1`` when the box is tiny, ``min(xmax - xmin + 1, ymax - ymin + 1) <
  difficult_min_side`` (default 14 px), or when the object is mostly hidden: fewer than
  ``difficult_min_visible`` (default 35%) of its full pixels are visible in the final
  image (pixels lost to later objects, to distractors above it, and to the image
  border all count as hidden). With the defaults about 10% of the objects are
  difficult; as in VOC, evaluation ignores them.

Splits: ids are ``000001``, ``000002``, ... with the ``n_train`` trainval images first
and the ``n_test`` test images after; ``val`` is a seeded random ``val_fraction`` of
trainval, ``train`` the rest.

``layout="yolo"`` writes the same images in the YOLO layout instead (ultralytics' ``data.yaml``
with ``images/<split>/`` and ``labels/<split>/`` for ``train``, ``val`` and ``test``;
:mod:`spyolo.data.yolo`): one ``class cx cy w h`` line per object, with the VOC box's continuous
edges. YOLO labels have no difficult flag: difficult objects are ordinary boxes there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import multiprocessing
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from spyolo.errors import ConfigError, DatasetError
from spyolo.utils.io import atomic_write_text

__all__ = [
    "SYNTHETIC_CLASSES",
    "SyntheticSpec",
    "SyntheticObject",
    "SyntheticImage",
    "SplitStatistics",
    "render_synthetic_image",
    "annotation_xml",
    "yolo_labels",
    "YOLO_SPLITS",
    "generate_synthetic_voc",
    "synthetic_settings",
    "read_provenance",
    "provenance_for",
    "split_statistics",
    "checked_classes",
    "claim_folder",
    "spec_and_classes",
    "mark_complete",
    "shape_polygons",
    "is_complete",
    "is_synthetic_folder",
    "ensure_generated",
]

log = logging.getLogger(__name__)

SYNTHETIC_CLASSES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "hexagon",
    "cross",
    "ring",
    "arrow",
)
"""Class names of the synthetic dataset, in label order."""

_FOLDER_NAME = "spyolo-synthetic"
_DATABASE_NAME = "spyolo synthetic"
_SPEC_FILE = "synthetic_spec.json"  # written first: marks the folder as spyolo's own
_COMPLETE_FILE = ".synthetic_complete"  # written last: the generation finished
_OWNER_BACKGROUND = -1
_OWNER_DISTRACTOR = -2
_SUBPIXEL_BITS = 4  # cv2 fixed-point shift for sub-pixel polygon vertices
_TEXT_CHARS = "abcdefghkmnpqrsuvwyzBEFGHKMNPRSW2345679"  # no O/0/X/+ look-alikes


@dataclass(frozen=True)
class SyntheticSpec:
    """Knobs that control how hard the synthetic benchmark is.

    Ranges are inclusive ``(low, high)`` pairs. The defaults give a cluttered but
    learnable benchmark (see the module docstring for what each knob does).
    """

    objects_per_image: tuple[int, int] = (1, 6)
    min_object_size: float = 12.0
    max_object_frac: float = 0.5
    aspect_range: tuple[float, float] = (0.6, 1.6)
    truncation_prob: float = 0.15
    min_visible_keep: float = 0.25
    min_contrast: float = 45.0
    distractors: tuple[int, int] = (2, 8)
    distractor_above_prob: float = 0.25
    background_lines: tuple[int, int] = (2, 10)
    background_noise_sigma: tuple[float, float] = (4.0, 20.0)
    noise_sigma: tuple[float, float] = (2.0, 8.0)
    difficult_min_side: int = 14
    difficult_min_visible: float = 0.35
    placement_tries: int = 30

    def __post_init__(self) -> None:
        def check_range(name: str, minimum: float) -> None:
            value = getattr(self, name)
            if len(value) != 2 or not minimum <= value[0] <= value[1]:
                raise ConfigError(
                    f"SyntheticSpec.{name} must be a (low, high) pair with "
                    f"{minimum} <= low <= high, got {value!r}"
                )

        check_range("objects_per_image", 1)
        check_range("aspect_range", 1e-3)
        check_range("distractors", 0)
        check_range("background_lines", 0)
        check_range("background_noise_sigma", 0.0)
        check_range("noise_sigma", 0.0)
        for name in ("truncation_prob", "min_visible_keep", "distractor_above_prob",
                     "difficult_min_visible"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"SyntheticSpec.{name} must be in [0, 1], got {value!r}")
        if not 0.0 < self.max_object_frac <= 1.0:
            raise ConfigError(
                f"SyntheticSpec.max_object_frac must be in (0, 1], got {self.max_object_frac!r}"
            )
        if self.min_object_size < 4:
            raise ConfigError(
                f"SyntheticSpec.min_object_size must be >= 4 px, got {self.min_object_size!r}"
            )
        if self.placement_tries < 1:
            raise ConfigError(
                f"SyntheticSpec.placement_tries must be >= 1, got {self.placement_tries!r}"
            )


@dataclass(frozen=True)
class SyntheticObject:
    """One annotated object of a rendered image.

    ``box`` is ``(xmin, ymin, xmax, ymax)`` in VOC convention (1-based, inclusive,
    clipped to the image). ``total_pixels`` counts the object's full mask (also the
    part outside the image), ``visible_pixels`` the pixels of it that remain visible in
    the final image (equal to ``(owner == i).sum()`` for the i-th object of
    :attr:`SyntheticImage.owner`).
    """

    name: str
    box: tuple[int, int, int, int]
    truncated: bool
    difficult: bool
    total_pixels: int
    visible_pixels: int

    @property
    def visible_fraction(self) -> float:
        """Fraction of the object's full mask that is visible in the image."""
        return self.visible_pixels / self.total_pixels


@dataclass(frozen=True)
class SyntheticImage:
    """A rendered image before JPEG compression.

    ``image`` is ``(H, W, 3)`` uint8 RGB. ``owner`` is ``(H, W)`` int16: the index of
    the object whose pixel is visible there, ``-1`` for background (and distractors
    below the objects), ``-2`` for distractors drawn above the objects.
    """

    image: np.ndarray
    objects: tuple[SyntheticObject, ...]
    owner: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class SplitStatistics:
    """Counts for one image set of a generated dataset."""

    images: int
    objects: int
    difficult: int
    truncated: int


# --------------------------------------------------------------------------- shapes


def _unit_box(points: np.ndarray) -> np.ndarray:
    """Shift and scale each axis of ``points`` so that their bounds are [-0.5, 0.5]."""
    low = points.min(axis=0)
    high = points.max(axis=0)
    return (points - (low + high) / 2.0) / (high - low)


def _regular_polygon(n: int, phase: float = 0.0) -> np.ndarray:
    angles = phase + np.arange(n) * (2.0 * math.pi / n)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _class_contours(name: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Outline of a class in a unit box: ``(filled contours, hole contours)``."""
    if name == "circle":
        return [_unit_box(_regular_polygon(72))], []
    if name == "square":
        return [np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])], []
    if name == "triangle":
        return [np.array([[0.0, -0.5], [0.5, 0.5], [-0.5, 0.5]])], []
    if name == "star":
        outer = _regular_polygon(5, -math.pi / 2)
        inner = 0.4 * _regular_polygon(5, -math.pi / 2 + math.pi / 5)
        star = np.empty((10, 2))
        star[0::2] = outer
        star[1::2] = inner
        return [_unit_box(star)], []
    if name == "hexagon":
        return [_unit_box(_regular_polygon(6))], []
    if name == "cross":
        a, b = 0.5, 1.0 / 6.0
        cross = np.array([
            [-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b],
            [b, a], [-b, a], [-b, b], [-a, b], [-a, -b], [-b, -b],
        ])
        return [cross], []
    if name == "ring":
        circle = _unit_box(_regular_polygon(72))
        return [circle], [0.55 * circle]
    if name == "arrow":
        arrow = np.array([
            [-0.5, -0.15], [0.05, -0.15], [0.05, -0.5], [0.5, 0.0],
            [0.05, 0.5], [0.05, 0.15], [-0.5, 0.15],
        ])
        return [arrow], []
    raise ConfigError(f"unknown synthetic class {name!r}; expected one of {SYNTHETIC_CLASSES}")


def _transform(points: np.ndarray, width: float, height: float, angle: float,
               center: tuple[float, float]) -> np.ndarray:
    """Scale unit-box ``points`` to ``width x height``, rotate by ``angle`` rad, move."""
    scaled = points * np.array([width, height])
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    rotation = np.array([[cos_a, -sin_a], [sin_a, cos_a]])
    return scaled @ rotation.T + np.asarray(center)


@dataclass(frozen=True)
class _Stamp:
    """A rasterised shape: anti-aliased coverage ``alpha`` (uint8) at offset (x0, y0)."""

    alpha: np.ndarray
    x0: int
    y0: int

    @property
    def mask(self) -> np.ndarray:
        return self.alpha >= 128


def _rasterise(filled: Sequence[np.ndarray], holes: Sequence[np.ndarray]) -> _Stamp:
    """Rasterise polygons (image coordinates, pixel centres at integers)."""
    everything = np.concatenate(list(filled) + list(holes), axis=0)
    x0 = int(math.floor(everything[:, 0].min())) - 1
    y0 = int(math.floor(everything[:, 1].min())) - 1
    x1 = int(math.ceil(everything[:, 0].max())) + 1
    y1 = int(math.ceil(everything[:, 1].max())) + 1
    alpha = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    scale = float(1 << _SUBPIXEL_BITS)
    origin = np.array([x0, y0], np.float64)

    def fixed(points: np.ndarray) -> np.ndarray:
        return np.round((points - origin) * scale).astype(np.int32).reshape(-1, 1, 2)

    cv2.fillPoly(alpha, [fixed(p) for p in filled], 255, cv2.LINE_AA, _SUBPIXEL_BITS)
    for hole in holes:
        cv2.fillPoly(alpha, [fixed(hole)], 0, cv2.LINE_AA, _SUBPIXEL_BITS)
    return _Stamp(alpha, x0, y0)


# ------------------------------------------------------------------------- textures


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, 255.0, size=3).astype(np.float32)


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random ``(height, width, 3)`` float32 RGB fill; same law for every shape."""
    first = _random_colour(rng)
    mix = rng.uniform(0.3, 1.0)
    second = (1.0 - mix) * first + mix * _random_colour(rng)
    kind = int(rng.integers(5))
    if kind == 0:  # solid
        return np.broadcast_to(first, (height, width, 3)).copy()
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    angle = rng.uniform(0.0, math.pi)
    u = xs * math.cos(angle) + ys * math.sin(angle)
    if kind == 1:  # stripes
        period = rng.uniform(3.0, 14.0)
        weight = (np.mod(u / period + rng.uniform(), 1.0) < 0.5).astype(np.float32)
    elif kind == 2:  # checker
        period = rng.uniform(3.0, 14.0)
        v = -xs * math.sin(angle) + ys * math.cos(angle)
        weight = np.mod(np.floor(u / period) + np.floor(v / period), 2.0).astype(np.float32)
    elif kind == 3:  # smooth noise
        cell = rng.uniform(3.0, 12.0)
        coarse = rng.uniform(0.0, 1.0, size=(
            max(2, int(height / cell) + 2), max(2, int(width / cell) + 2))).astype(np.float32)
        weight = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
    else:  # linear gradient across the patch
        span = float(np.ptp(u)) or 1.0
        weight = (u - u.min()) / span
    weight = np.broadcast_to(weight, (height, width))[..., None]
    return (1.0 - weight) * first + weight * second


# ---------------------------------------------------------------------- distractors


def _distractor_stamp(rng: np.random.Generator, size: float,
                      center: tuple[float, float]) -> _Stamp:
    """A non-class shape: blob, irregular polygon, arc, pseudo-text or scribble."""
    kind = int(rng.integers(5))
    angle = rng.uniform(0.0, 2.0 * math.pi)
    if kind == 0:  # lumpy blob: radius modulated by harmonics 3..6
        theta = np.linspace(0.0, 2.0 * math.pi, 96, endpoint=False)
        radius = np.ones_like(theta)
        for harmonic in range(3, 7):
            radius += rng.uniform(0.06, 0.16) * np.cos(harmonic * theta + rng.uniform(0, 6.3))
        points = np.stack([radius * np.cos(theta), radius * np.sin(theta)], axis=1)
        aspect = math.exp(rng.uniform(-0.5, 0.5))
        return _rasterise([_transform(_unit_box(points), size * aspect, size / aspect,
                                      angle, center)], [])
    if kind == 1:  # jagged polygon: many evenly spread vertices at random radii
        n = int(rng.integers(9, 17))
        theta = (np.arange(n) + rng.uniform(-0.3, 0.3, size=n)) * (2.0 * math.pi / n)
        radius = rng.uniform(0.3, 1.0, size=n)
        points = np.stack([radius * np.cos(theta), radius * np.sin(theta)], axis=1)
        return _rasterise([_transform(_unit_box(points), size, size, angle, center)], [])
    pad = int(size) + 8
    canvas = np.zeros((2 * pad + 1, 2 * pad + 1), np.uint8)
    thickness = max(2, int(round(size * rng.uniform(0.05, 0.12))))
    if kind == 2:  # thick arc (never a closed ring)
        axes = (max(3, int(size / 2)), max(3, int(size / 2 * rng.uniform(0.5, 1.0))))
        start = rng.uniform(0.0, 360.0)
        cv2.ellipse(canvas, (pad, pad), axes, math.degrees(angle), start,
                    start + rng.uniform(60.0, 230.0), 255, thickness, cv2.LINE_AA)
    elif kind == 3:  # pseudo-text
        text = "".join(rng.choice(list(_TEXT_CHARS), size=int(rng.integers(2, 6))))
        font = int(rng.choice([cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX,
                               cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_PLAIN]))
        stroke = max(1, thickness // 2)
        (text_w, text_h), _ = cv2.getTextSize(text, font, 1.0, stroke)
        scale = max(0.3, min(size / max(text_w, 1), 0.6 * size / max(text_h, 1)))
        (text_w, text_h), _ = cv2.getTextSize(text, font, scale, stroke)
        cv2.putText(canvas, text, (pad - text_w // 2, pad + text_h // 2), font, scale, 255,
                    stroke, cv2.LINE_AA)
    else:  # scribble: a smooth random walk
        steps = int(rng.integers(4, 9))
        walk = np.cumsum(rng.normal(0.0, size / 4.0, size=(steps, 2)), axis=0)
        walk -= walk.mean(axis=0)
        walk = np.clip(walk, -size / 2, size / 2) + pad
        cv2.polylines(canvas, [np.round(walk).astype(np.int32).reshape(-1, 1, 2)], False,
                      255, thickness, cv2.LINE_AA)
    return _Stamp(canvas, int(round(center[0])) - pad, int(round(center[1])) - pad)


# -------------------------------------------------------------------------- drawing


class _Canvas:
    """An image being composed, with the owner map used for visibility bookkeeping."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image  # (H, W, 3) float32 RGB
        self.height, self.width = image.shape[:2]
        self.owner = np.full((self.height, self.width), _OWNER_BACKGROUND, np.int16)
        self.visible: list[int] = []
        self.total: list[int] = []

    def clip(self, stamp: _Stamp) -> tuple[slice, slice, slice, slice] | None:
        """(image rows, image cols, stamp rows, stamp cols) of the overlap, or None."""
        h, w = stamp.alpha.shape
        ix0, iy0 = max(stamp.x0, 0), max(stamp.y0, 0)
        ix1, iy1 = min(stamp.x0 + w, self.width), min(stamp.y0 + h, self.height)
        if ix0 >= ix1 or iy0 >= iy1:
            return None
        return (slice(iy0, iy1), slice(ix0, ix1),
                slice(iy0 - stamp.y0, iy1 - stamp.y0), slice(ix0 - stamp.x0, ix1 - stamp.x0))

    def keeps_objects_visible(self, stamp: _Stamp, min_fraction: float) -> bool:
        """Whether drawing ``stamp`` on top leaves every object >= min_fraction visible."""
        region = self.clip(stamp)
        if region is None or not self.visible:
            return True
        rows, cols, srows, scols = region
        covered = self.owner[rows, cols][stamp.mask[srows, scols]]
        lost = np.bincount(covered[covered >= 0], minlength=len(self.visible))
        visible = np.asarray(self.visible) - lost
        return bool(np.all(visible >= min_fraction * np.asarray(self.total)))

    def mean_under(self, stamp: _Stamp) -> np.ndarray | None:
        region = self.clip(stamp)
        if region is None:
            return None
        rows, cols, srows, scols = region
        mask = stamp.mask[srows, scols]
        if not mask.any():
            return None
        return self.image[rows, cols][mask].mean(axis=0)

    def paint(self, stamp: _Stamp, texture: np.ndarray, owner: int | None) -> None:
        """Alpha-blend ``texture`` through ``stamp``; ``owner`` None keeps the owner map."""
        region = self.clip(stamp)
        if region is None:
            return
        rows, cols, srows, scols = region
        alpha = stamp.alpha[srows, scols].astype(np.float32)[..., None] / 255.0
        patch = self.image[rows, cols]
        patch += alpha * (texture[srows, scols] - patch)
        if owner is None:
            return
        mask = stamp.mask[srows, scols]
        owners = self.owner[rows, cols]
        covered = owners[mask]
        lost = np.bincount(covered[covered >= 0], minlength=len(self.visible))
        for index in np.flatnonzero(lost):
            self.visible[index] -= int(lost[index])
        owners[mask] = owner
        if owner >= 0:
            self.visible.append(int(mask.sum()))
            self.total.append(int(stamp.mask.sum()))


def _background(rng: np.random.Generator, height: int, width: int,
                spec: SyntheticSpec) -> np.ndarray:
    grid = (int(rng.integers(2, 6)), int(rng.integers(2, 6)))
    coarse = rng.uniform(0.0, 255.0, size=(*grid, 3)).astype(np.float32)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    ramp = xs * math.cos(angle) + ys * math.sin(angle)
    ramp = ((ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6))[..., None]
    gradient = (1.0 - ramp) * _random_colour(rng) + ramp * _random_colour(rng)
    blend = rng.uniform(0.0, 0.7)
    image = (1.0 - blend) * image + blend * gradient
    cell = rng.uniform(1.5, 10.0)
    sigma = rng.uniform(*spec.background_noise_sigma)
    noise = rng.normal(0.0, sigma, size=(int(height / cell) + 2, int(width / cell) + 2, 3))
    image += cv2.resize(noise.astype(np.float32), (width, height),
                        interpolation=cv2.INTER_LINEAR)
    for _ in range(int(rng.integers(spec.background_lines[0], spec.background_lines[1] + 1))):
        p0 = (int(rng.integers(width)), int(rng.integers(height)))
        p1 = (int(rng.integers(width)), int(rng.integers(height)))
        cv2.line(image, p0, p1, _random_colour(rng).tolist(), int(rng.integers(1, 4)),
                 cv2.LINE_AA)
    return np.clip(image, 0.0, 255.0).astype(np.float32)


def _object_stamp(rng: np.random.Generator, name: str, spec: SyntheticSpec,
                  width: int, height: int) -> _Stamp | None:
    """Draw size, aspect, rotation and position of one object; None if it misses."""
    filled, holes = _class_contours(name)
    max_size = max(spec.min_object_size, spec.max_object_frac * min(width, height))
    size = math.exp(rng.uniform(math.log(spec.min_object_size), math.log(max_size)))
    aspect = math.exp(rng.uniform(*np.log(spec.aspect_range)))
    obj_w, obj_h = size * math.sqrt(aspect), size / math.sqrt(aspect)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    # Extent of the rotated shape around its centre, to choose where it goes.
    extent = _transform(np.concatenate(filled), obj_w, obj_h, angle, (0.0, 0.0))
    lo, hi = extent.min(axis=0), extent.max(axis=0)
    margin = 2.0
    if rng.uniform() < spec.truncation_prob:
        # Push the object over one border (or two, near a corner) by 10-55% of its extent.
        center = [rng.uniform(-lo[0] + margin, width - 1 - hi[0] - margin),
                  rng.uniform(-lo[1] + margin, height - 1 - hi[1] - margin)]
        axes = [int(rng.integers(2))] if rng.uniform() < 0.8 else [0, 1]
        for axis in axes:
            span = hi[axis] - lo[axis]
            outside = rng.uniform(0.1, 0.55) * span
            if rng.uniform() < 0.5:
                center[axis] = -outside - lo[axis]
            else:
                center[axis] = (width, height)[axis] - 1 + outside - hi[axis]
    else:
        if hi[0] - lo[0] + 2 * margin >= width or hi[1] - lo[1] + 2 * margin >= height:
            return None
        center = [rng.uniform(-lo[0] + margin, width - 1 - hi[0] - margin),
                  rng.uniform(-lo[1] + margin, height - 1 - hi[1] - margin)]
    center_xy = (float(center[0]), float(center[1]))
    stamp = _rasterise([_transform(p, obj_w, obj_h, angle, center_xy) for p in filled],
                       [_transform(p, obj_w, obj_h, angle, center_xy) for p in holes])
    return stamp if stamp.mask.any() else None


def _extent(stamp: _Stamp) -> tuple[int, int, int, int]:
    """0-based inclusive (x0, y0, x1, y1) of the stamp's mask in image coordinates."""
    rows = np.flatnonzero(stamp.mask.any(axis=1))
    cols = np.flatnonzero(stamp.mask.any(axis=0))
    return (stamp.x0 + int(cols[0]), stamp.y0 + int(rows[0]),
            stamp.x0 + int(cols[-1]), stamp.y0 + int(rows[-1]))


def _image_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, index)))


def render_synthetic_image(seed: int, index: int, *,
                           classes: Sequence[str] = SYNTHETIC_CLASSES,
                           spec: SyntheticSpec | None = None,
                           min_side: int = 300, max_side: int = 500) -> SyntheticImage:
    """Render image number ``index`` (0-based) of the dataset with seed ``seed``.

    Deterministic in its arguments; :func:`generate_synthetic_voc` writes exactly this
    image (JPEG-compressed) and these objects for id ``index + 1``.
    """
    spec = SyntheticSpec() if spec is None else spec
    classes = _checked_classes(classes)
    if not 32 <= min_side <= max_side:
        raise ConfigError(f"need 32 <= min_side <= max_side, got {min_side}, {max_side}")
    rng = _image_rng(seed, index)
    width = int(rng.integers(min_side, max_side + 1))
    height = int(rng.integers(min_side, max_side + 1))
    canvas = _Canvas(_background(rng, height, width, spec))

    n_distractors = int(rng.integers(spec.distractors[0], spec.distractors[1] + 1))
    above = rng.uniform(size=n_distractors) < spec.distractor_above_prob

    def distractor() -> _Stamp:
        size = math.exp(rng.uniform(math.log(spec.min_object_size),
                                    math.log(0.4 * min(width, height))))
        return _distractor_stamp(rng, size, (rng.uniform(0, width), rng.uniform(0, height)))

    def paint(stamp: _Stamp, owner: int | None) -> None:
        texture = _texture(rng, *stamp.alpha.shape)
        below = canvas.mean_under(stamp)
        mask = stamp.mask
        for _ in range(6):
            if below is None or not mask.any():
                break
            if float(np.linalg.norm(texture[mask].mean(axis=0) - below)) >= spec.min_contrast:
                break
            texture = _texture(rng, *stamp.alpha.shape)
        canvas.paint(stamp, texture, owner)

    for _ in range(int((~above).sum())):
        paint(distractor(), None)

    names: list[str] = []
    extents: list[tuple[int, int, int, int]] = []
    n_objects = int(rng.integers(spec.objects_per_image[0], spec.objects_per_image[1] + 1))
    for _ in range(n_objects):
        name = classes[int(rng.integers(len(classes)))]
        for _ in range(spec.placement_tries):
            stamp = _object_stamp(rng, name, spec, width, height)
            if stamp is None:
                continue
            x0, y0, x1, y1 = _extent(stamp)
            inside = x0 >= 0 and y0 >= 0 and x1 <= width - 1 and y1 <= height - 1
            touches = x0 == 0 or y0 == 0 or x1 == width - 1 or y1 == height - 1
            if inside and touches:
                continue  # untruncated objects must not touch the border
            region = canvas.clip(stamp)
            if region is None:
                continue
            in_image = int(stamp.mask[region[2], region[3]].sum())
            if in_image < spec.min_visible_keep * int(stamp.mask.sum()):
                continue
            if not canvas.keeps_objects_visible(stamp, spec.min_visible_keep):
                continue
            paint(stamp, len(names))
            names.append(name)
            extents.append((x0, y0, x1, y1))
            break

    for _ in range(int(above.sum())):
        for _ in range(spec.placement_tries):
            stamp = distractor()
            if canvas.keeps_objects_visible(stamp, spec.min_visible_keep):
                paint(stamp, _OWNER_DISTRACTOR)
                break

    sigma = rng.uniform(*spec.noise_sigma)
    noisy = canvas.image + rng.normal(0.0, sigma, size=canvas.image.shape).astype(np.float32)
    image = np.clip(np.round(noisy), 0, 255).astype(np.uint8)

    objects = []
    for index_obj, (name, (x0, y0, x1, y1)) in enumerate(zip(names, extents)):
        truncated = x0 < 0 or y0 < 0 or x1 > width - 1 or y1 > height - 1
        box = (max(x0, 0) + 1, max(y0, 0) + 1, min(x1, width - 1) + 1, min(y1, height - 1) + 1)
        visible, total = canvas.visible[index_obj], canvas.total[index_obj]
        tiny = min(box[2] - box[0] + 1, box[3] - box[1] + 1) < spec.difficult_min_side
        hidden = visible < spec.difficult_min_visible * total
        objects.append(SyntheticObject(name, box, truncated, tiny or hidden, total, visible))
    return SyntheticImage(image, tuple(objects), canvas.owner)


# ---------------------------------------------------------------------- VOC writing


def annotation_xml(image_id: str, width: int, height: int,
                   objects: Sequence[SyntheticObject]) -> bytes:
    """The VOC annotation XML document of one image, UTF-8 encoded."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = _FOLDER_NAME
    ET.SubElement(root, "filename").text = f"{image_id}.jpg"
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = _DATABASE_NAME
    ET.SubElement(source, "annotation").text = _DATABASE_NAME
    ET.SubElement(source, "image").text = "synthetic"
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(width)
    ET.SubElement(size, "height").text = str(height)
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(root, "segmented").text = "0"
    for obj in objects:
        element = ET.SubElement(root, "object")
        ET.SubElement(element, "name").text = obj.name
        ET.SubElement(element, "pose").text = "Unspecified"
        ET.SubElement(element, "truncated").text = str(int(obj.truncated))
        ET.SubElement(element, "difficult").text = str(int(obj.difficult))
        box = ET.SubElement(element, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), obj.box):
            ET.SubElement(box, tag).text = str(value)
    ET.indent(root, space="\t")
    return ET.tostring(root, encoding="unicode").encode("utf-8") + b"\n"


def yolo_labels(width: int, height: int, objects: Sequence[SyntheticObject], classes: Sequence[str]) -> bytes:
    """The YOLO label file of one image: ``class cx cy w h`` per object, normalised by the image
    size, from the VOC box's continuous edges (``x1 - 1 .. x2``), written exactly enough that
    :mod:`spyolo.data.yolo` reads back the same whole-pixel box."""
    lines = []
    for obj in objects:
        x1, y1, x2, y2 = obj.box
        cx, cy = (x1 - 1 + x2) / 2 / width, (y1 - 1 + y2) / 2 / height
        w, h = (x2 - x1 + 1) / width, (y2 - y1 + 1) / height
        lines.append(f"{classes.index(obj.name)} {cx:.10g} {cy:.10g} {w:.10g} {h:.10g}\n")
    return "".join(lines).encode("ascii")


@dataclass(frozen=True)
class _Job:
    out_dir: str
    seed: int
    index: int
    classes: tuple[str, ...]
    spec: SyntheticSpec
    min_side: int
    max_side: int
    jpeg_quality: int
    layout: str = "voc"
    split: str = ""  # the YOLO layout's split folder


def _write_one(job: _Job) -> int:
    """Render and write one image and its annotation; returns the image index."""
    rendered = render_synthetic_image(job.seed, job.index, classes=job.classes, spec=job.spec,
                                      min_side=job.min_side, max_side=job.max_side)
    image_id = _image_id(job.index)
    out = Path(job.out_dir)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rendered.image, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, job.jpeg_quality])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for synthetic image {image_id}")
    height, width = rendered.image.shape[:2]
    if job.layout == "yolo":
        (out / "images" / job.split / f"{image_id}.jpg").write_bytes(encoded.tobytes())
        (out / "labels" / job.split / f"{image_id}.txt").write_bytes(
            yolo_labels(width, height, rendered.objects, job.classes))
        return job.index
    (out / "JPEGImages" / f"{image_id}.jpg").write_bytes(encoded.tobytes())
    (out / "Annotations" / f"{image_id}.xml").write_bytes(
        annotation_xml(image_id, width, height, rendered.objects))
    return job.index


def _image_id(index: int) -> str:
    return f"{index + 1:06d}"


def _checked_classes(classes: Sequence[str] | None) -> tuple[str, ...]:
    if classes is None:
        return SYNTHETIC_CLASSES
    chosen = tuple(classes)
    unknown = [name for name in chosen if name not in SYNTHETIC_CLASSES]
    if unknown:
        raise ConfigError(f"unknown synthetic classes {unknown}; choose from {SYNTHETIC_CLASSES}")
    if not chosen or len(set(chosen)) != len(chosen):
        raise ConfigError(f"classes must be a non-empty list without repeats, got {chosen}")
    return chosen


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    atomic_write_text(path, "".join(f"{line}\n" for line in lines))


def is_synthetic_folder(out_dir: str | Path) -> bool:
    """Whether ``out_dir`` holds a dataset this generator wrote (finished or not): its ``synthetic_spec.json``."""
    return (Path(out_dir) / _SPEC_FILE).is_file()


def is_complete(out_dir: str | Path) -> bool:
    """Whether the generation into ``out_dir`` finished (its completion marker was written)."""
    return (Path(out_dir) / _COMPLETE_FILE).is_file()


def _split_ids(n_train: int, n_test: int, seed: int, val_fraction: float) -> dict[str, list[str]]:
    """``train``, ``val``, ``trainval`` and ``test`` ids (see the module docstring)."""
    trainval = [_image_id(i) for i in range(n_train)]
    test = [_image_id(i) for i in range(n_train, n_train + n_test)]
    n_val = 0 if n_train < 2 else max(1, int(round(val_fraction * n_train)))
    n_val = min(n_val, n_train - 1) if n_train >= 2 else 0
    split_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    val_set = set(split_rng.choice(n_train, size=n_val, replace=False).tolist()) if n_val else set()
    val = [trainval[i] for i in sorted(val_set)]
    train = [trainval[i] for i in range(n_train) if i not in val_set]
    return {"train": train, "val": val, "trainval": trainval, "test": test}


YOLO_SPLITS = ("train", "val", "test")
"""The splits (folders and ``data.yaml`` keys) of the YOLO layout."""


def generate_synthetic_voc(out_dir: str | Path, n_train: int, n_test: int, seed: int = 0, *,
                           classes: Sequence[str] | None = None,
                           min_side: int = 300, max_side: int = 500,
                           jpeg_quality: int = 90, workers: int = 1, progress: bool = True,
                           spec: SyntheticSpec | None = None, val_fraction: float = 0.15,
                           overwrite: bool = False, coco: bool = False, layout: str = "voc") -> Path:
    """Write the synthetic dataset as a VOC year folder at ``out_dir``; return its path.

    ``n_train`` trainval images (ids ``000001`` ..) and ``n_test`` test images follow.
    ``val_fraction`` of trainval (at least one image when ``n_train >= 2``) becomes
    ``val``, chosen with ``seed``. ``classes`` restricts the object classes (default
    :data:`SYNTHETIC_CLASSES`). ``spec`` sets the difficulty knobs. ``workers > 1``
    renders in that many processes with identical output.

    The provenance record ``synthetic_spec.json`` is written first and a completion marker
    last, so an interrupted generation is recognised as this generator's own, unfinished.
    An existing non-empty ``out_dir`` is refused unless ``overwrite`` is true *and* it holds
    a dataset this generator wrote (its ``synthetic_spec.json``): then the generated
    sub-folders and files are replaced, and nothing else in the folder is touched. A folder
    of other data is never deleted.

    ``coco=True`` also writes every split as a COCO annotation file,
    ``annotations/instances_<split>.json``, over the same images (``JPEGImages/``; difficult
    objects as ``iscrowd``), usable as ``coco:annotations/instances_<split>.json:JPEGImages``.

    ``layout="yolo"`` writes the same images in the YOLO layout instead (module docstring): set
    entries ``yolo:OUT/data.yaml:train`` (``val``, ``test``).
    """
    if layout not in ("voc", "yolo"):
        raise ConfigError(f"layout must be 'voc' or 'yolo', got {layout!r}")
    if coco and layout != "voc":
        raise ConfigError("coco=True (--coco) writes COCO files over the VOC layout's JPEGImages/; not with the "
                          "YOLO layout")
    chosen = _checked_classes(classes)
    spec = SyntheticSpec() if spec is None else spec
    if n_train < 0 or n_test < 0 or n_train + n_test == 0:
        raise ConfigError(f"need n_train >= 0, n_test >= 0 and at least one image, "
                         f"got n_train={n_train}, n_test={n_test}")
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    if not 32 <= min_side <= max_side:
        raise ConfigError(f"need 32 <= min_side <= max_side, got {min_side}, {max_side}")
    if not 1 <= jpeg_quality <= 100:
        raise ConfigError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")

    out = Path(out_dir)
    provenance = provenance_for(n_train, n_test, seed, classes=chosen, min_side=min_side,
                                max_side=max_side, jpeg_quality=jpeg_quality, spec=spec,
                                val_fraction=val_fraction, layout=layout)
    claim_folder(out, ["JPEGImages", "Annotations", "ImageSets", "annotations", "classes.txt", "images", "labels",
                       "data.yaml"], provenance, overwrite)
    splits = _split_ids(n_train, n_test, seed, val_fraction)
    split_of = {image_id: name for name in YOLO_SPLITS for image_id in splits[name]}
    if layout == "yolo":
        for name in YOLO_SPLITS:
            if splits[name]:
                (out / "images" / name).mkdir(parents=True, exist_ok=True)
                (out / "labels" / name).mkdir(parents=True, exist_ok=True)
    else:
        for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
            (out / sub).mkdir(parents=True, exist_ok=True)

    jobs = [_Job(str(out), seed, index, chosen, spec, min_side, max_side, jpeg_quality, layout,
                 split_of[_image_id(index)]) for index in range(n_train + n_test)]
    done: Iterator[int]
    if workers == 1:
        done = map(_write_one, jobs)
        _drain(done, len(jobs), progress)
    else:
        context = multiprocessing.get_context("spawn")
        with context.Pool(processes=workers) as pool:
            _drain(pool.imap_unordered(_write_one, jobs, chunksize=8), len(jobs), progress)

    if layout == "yolo":
        record = {name: f"images/{name}" for name in YOLO_SPLITS if splits[name]}
        header = "# the spyolo synthetic shapes in the YOLO layout (spyolo synth --yolo)\n"
        atomic_write_text(out / "data.yaml", header + yaml.safe_dump({**record, "names": list(chosen)},
                                                                       sort_keys=False))
        mark_complete(out)
        return out
    main = out / "ImageSets" / "Main"
    for name, ids in splits.items():
        _write_lines(main / f"{name}.txt", ids)
    _write_lines(out / "classes.txt", chosen)
    if coco:
        from spyolo.data.coco import voc_split_to_coco

        for name in ("train", "val", "trainval", "test"):
            record = voc_split_to_coco(out, name, list(chosen))
            atomic_write_text(out / "annotations" / f"instances_{name}.json", json.dumps(record) + "\n")
    mark_complete(out)
    return out


def claim_folder(out: Path, generated: Sequence[str], provenance: dict[str, Any], overwrite: bool) -> None:
    """Make ``out`` ready for a generator's output and write its provenance record.

    A missing or empty folder is used as it is. A non-empty one is refused unless it holds a
    dataset a spyolo generator wrote (its ``synthetic_spec.json``) *and* ``overwrite`` is true;
    then the entries ``generated`` (and the record and completion marker) are removed, and
    nothing else in the folder is touched.

    Raises:
        FileExistsError: ``out`` is a file, holds other data, or holds generated data without
            ``overwrite``.
    """
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not is_synthetic_folder(out):
            raise FileExistsError(
                f"{out} is not empty and holds data spyolo did not generate (no {_SPEC_FILE}); "
                f"spyolo never deletes it: choose a new or empty folder")
        if not overwrite:
            raise FileExistsError(
                f"{out} is not empty: it holds a synthetic dataset spyolo generated; pass overwrite=True "
                f"(--overwrite) to regenerate it")
        for name in [_COMPLETE_FILE, *generated, _SPEC_FILE]:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / _SPEC_FILE, json.dumps(provenance, indent=2, sort_keys=True) + "\n")


def checked_classes(classes: Sequence[str] | None) -> tuple[str, ...]:
    """``classes`` checked against :data:`SYNTHETIC_CLASSES` (``None``: all of them).

    Raises:
        ValueError: an unknown or repeated name, or an empty list.
    """
    return _checked_classes(classes)


def mark_complete(out: Path) -> None:
    """Write the completion marker: the generation into ``out`` finished (see :func:`is_complete`)."""
    atomic_write_text(Path(out) / _COMPLETE_FILE, "")


def shape_polygons(name: str, width: float, height: float, angle: float,
                   center: tuple[float, float]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Outline of class ``name`` scaled to ``width x height``, rotated by ``angle`` rad, centred at
    ``center``: ``(filled contours, hole contours)`` in image coordinates."""
    filled, holes = _class_contours(name)
    return ([_transform(p, width, height, angle, center) for p in filled],
            [_transform(p, width, height, angle, center) for p in holes])


def spec_and_classes(cfg: Any, spec_type: type) -> tuple[Any, tuple[str, ...]]:
    """A generator's knobs and classes from a data config: ``spec_type(**cfg.synthetic_spec)`` (lists
    become ``(low, high)`` pairs) and ``cfg.synthetic_classes`` checked (empty: all classes).

    Raises:
        ValueError: an unknown knob (with the valid ones), a bad value, or a bad class list.
    """
    raw = dict(cfg.synthetic_spec or {})
    valid = [f.name for f in fields(spec_type)]
    unknown = sorted(k for k in raw if k not in valid)
    if unknown:
        raise ConfigError(f"data.synthetic_spec: unknown knob(s) {unknown}; valid knobs: {', '.join(valid)}")
    try:
        spec = spec_type(**{k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in raw.items()})
    except (TypeError, ValueError) as e:
        raise ConfigError(f"data.synthetic_spec: {e}") from None
    try:
        classes = _checked_classes(list(cfg.synthetic_classes or []) or None)
    except ValueError as e:
        raise ConfigError(f"data.synthetic_classes: {e}") from None
    return spec, classes


def synthetic_settings(cfg: Any) -> dict[str, Any]:
    """Generator keyword arguments (``classes``, ``min_side``, ``max_side``, ``spec``) of a data config.

    Reads ``cfg.synthetic_classes`` (empty: all of :data:`SYNTHETIC_CLASSES`),
    ``cfg.synthetic_min_side`` / ``cfg.synthetic_max_side`` and ``cfg.synthetic_spec`` (a mapping
    of :class:`SyntheticSpec` field names to values; lists become ``(low, high)`` pairs).

    Raises:
        ValueError: naming the offending key or value.
    """
    spec, classes = spec_and_classes(cfg, SyntheticSpec)
    min_side = int(cfg.synthetic_min_side)
    max_side = int(cfg.synthetic_max_side)
    if not 32 <= min_side <= max_side:
        raise ConfigError(
            f"data.synthetic_min_side/max_side: need 32 <= min_side <= max_side, got {min_side}, {max_side}")
    return {"classes": list(classes), "min_side": min_side, "max_side": max_side, "spec": spec}


def provenance_for(n_train: int, n_test: int, seed: int, *, classes: Sequence[str] | None = None,
                   min_side: int = 300, max_side: int = 500, jpeg_quality: int = 90,
                   spec: SyntheticSpec | None = None, val_fraction: float = 0.15,
                   layout: str = "voc") -> dict[str, Any]:
    """The provenance record :func:`generate_synthetic_voc` writes for these arguments (``layout``
    is recorded when it is not VOC's, so that records of VOC folders written before it stay valid)."""
    spec = SyntheticSpec() if spec is None else spec
    # through JSON so that tuples compare equal to what a written record reads back as
    return json.loads(json.dumps({
        "generator": "spyolo.data.synthetic", "seed": seed, "n_train": n_train, "n_test": n_test,
        "classes": list(_checked_classes(classes)), "min_side": min_side, "max_side": max_side,
        "jpeg_quality": jpeg_quality, "val_fraction": val_fraction, "spec": asdict(spec),
        **({} if layout == "voc" else {"layout": layout})}))


def read_provenance(out_dir: str | Path) -> dict[str, Any] | None:
    """The provenance record of a generated folder, or None when it has none (or it is unreadable)."""
    path = Path(out_dir) / _SPEC_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def ensure_generated(folder: Path, wanted: dict, n_train: int, generate: Callable[[], Any]) -> bool:
    """Make ``folder`` hold the generated set whose provenance record is ``wanted``.

    Nothing happens when it does (complete); ``generate()`` runs when the folder is missing,
    empty, written by a generator with other settings, or left unfinished. Returns whether it ran.
    Processes that start on the same folder at once (two trainings launched together on a fresh
    clone) take turns: the first generates, the others wait for it and then find the set complete.

    Raises:
        FileExistsError: the folder holds other data (no provenance record): never replaced.
    """
    with _generation_lock(folder):
        return _ensure_generated(folder, wanted, n_train, generate)


@contextlib.contextmanager
def _generation_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``.<folder name>.lock`` beside ``folder`` (POSIX ``flock``).

    The lock file is created once and left in place (removing it would let a third process lock a
    new file while a second still holds the old one). Where ``fcntl`` is missing (Windows) there is
    no lock and concurrent first runs must be avoided by the user.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _ensure_generated(folder: Path, wanted: dict, n_train: int, generate: Callable[[], Any]) -> bool:
    found = read_provenance(folder)
    if found == wanted and is_complete(folder):
        return False
    if folder.is_dir() and any(folder.iterdir()) and found is None:
        raise FileExistsError(
            f"{folder}: the config asks for a generated synthetic set here (data.synthetic_train="
            f"{n_train}) but the folder holds other data (no synthetic_spec.json); "
            f"point data.root elsewhere or set data.synthetic_train=0 to use the data as it is"
        )
    if found is not None:
        changed = sorted(k for k in set(wanted) | set(found) if wanted.get(k) != found.get(k))
        reason = (f"with other settings ({', '.join(changed)})" if changed
                  else "only in part (an earlier generation was interrupted)")
        log.info("%s was generated %s; regenerating it", folder, reason)
    generate()
    return True


def _drain(done: Iterator[int], total: int, progress: bool) -> None:
    for _ in tqdm(done, total=total, desc="synthetic VOC", unit="img", disable=not progress):
        pass


def _int_tag(element: ET.Element, tag: str, path: Path) -> int:
    text = element.findtext(tag)
    if text is None:
        raise DatasetError(f"{path}: <{tag}> is missing")
    try:
        return int(text)
    except ValueError:
        raise DatasetError(f"{path}: <{tag}> is not an integer: {text!r}") from None


def split_statistics(out_dir: str | Path) -> dict[str, SplitStatistics]:
    """Image, object, difficult and truncated counts per image set of a VOC folder."""
    out = Path(out_dir)
    main = out / "ImageSets" / "Main"
    stats: dict[str, SplitStatistics] = {}
    for split in ("train", "val", "trainval", "test"):
        path = main / f"{split}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: image set file is missing")
        ids = path.read_text(encoding="utf-8").split()
        objects = difficult = truncated = 0
        for image_id in ids:
            xml_path = out / "Annotations" / f"{image_id}.xml"
            try:
                root = ET.parse(xml_path).getroot()
            except (OSError, ET.ParseError) as error:
                raise DatasetError(f"{xml_path}: cannot read annotation: {error}") from None
            for obj in root.iter("object"):
                objects += 1
                difficult += _int_tag(obj, "difficult", xml_path)
                truncated += _int_tag(obj, "truncated", xml_path)
        stats[split] = SplitStatistics(len(ids), objects, difficult, truncated)
    return stats
