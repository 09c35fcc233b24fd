"""Draw detections on images: one colour per class, sizes that scale with the image.

Line width and font scale are proportional to the image's shorter side, so annotations
stay readable on a 64 px thumbnail and on a 4K frame. Each label (class name and score)
sits on a filled box in the class colour, with black or white text, whichever contrasts
more with that colour; labels that would leave the image are moved inside it.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # pragma: no cover - for annotations only: prediction.py imports this module
    from spyolo.inference.prediction import Prediction

__all__ = ["DrawStyle", "class_colors", "draw_predictions", "draw_style", "tile_images"]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_GOLDEN = 0.6180339887498949


def class_colors(num_classes: int) -> list[tuple[int, int, int]]:
    """``num_classes`` distinct, saturated BGR colours, the same for every call.

    Hues step by the golden ratio of the colour circle (neighbouring labels get far-apart
    hues); saturation and value alternate between two levels so that classes whose hues
    come close differ in brightness.
    """
    if num_classes < 0:
        raise ValueError(f"num_classes must be >= 0, got {num_classes}")
    colours = []
    for i in range(num_classes):
        hue = (i * _GOLDEN) % 1.0
        sat, val = (0.85, 1.0) if i % 2 == 0 else (1.0, 0.75)
        r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
        colours.append((int(round(b * 255)), int(round(g * 255)), int(round(r * 255))))
    return colours


@dataclass(frozen=True)
class DrawStyle:
    """Sizes used to annotate one image."""

    line_width: int
    font_scale: float
    font_thickness: int


def draw_style(height: int, width: int) -> DrawStyle:
    """Line width, font scale and text thickness for an ``height x width`` image.

    ``line_width = max(1, round(short_side / 250))``, ``font_scale = max(0.3,
    short_side / 800)`` and ``font_thickness = max(1, round(short_side / 400))``: 2 px
    lines and 0.6 font scale at 500 px, 1 px and 0.3 at 100 px.
    """
    short = max(1, min(int(height), int(width)))
    return DrawStyle(
        line_width=max(1, int(round(short / 250))),
        font_scale=max(0.3, short / 800),
        font_thickness=max(1, int(round(short / 400))),
    )


def _text_colour(bgr: tuple[int, int, int]) -> tuple[int, int, int]:
    b, g, r = bgr
    luminance = 0.299 * r + 0.587 * g + 0.114 * b
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)


def draw_predictions(
    image_bgr: np.ndarray,
    prediction: Prediction,
    colours: list[tuple[int, int, int]] | None = None,
    style: DrawStyle | None = None,
) -> np.ndarray:
    """Return a copy of ``image_bgr`` with the boxes, class names and scores drawn.

    Args:
        image_bgr: uint8 ``(H, W, 3)`` BGR image whose size matches ``prediction.image_size``.
        prediction: detections in that image's continuous pixel coordinates.
        colours: BGR colour per class (default :func:`class_colors`).
        style: sizes (default :func:`draw_style` of the image).

    Raises:
        ValueError: if the image is not ``(H, W, 3)`` uint8 or its size differs from
            the prediction's.
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError(f"draw_predictions needs a uint8 (H, W, 3) image, got {image_bgr.dtype} {image_bgr.shape}")
    h, w = image_bgr.shape[:2]
    if (h, w) != tuple(prediction.image_size):
        raise ValueError(f"image is {h}x{w} but the prediction is for "
                         f"{prediction.image_size[0]}x{prediction.image_size[1]}")
    colours = colours if colours is not None else class_colors(len(prediction.class_names))
    style = style if style is not None else draw_style(h, w)
    canvas = np.ascontiguousarray(image_bgr.copy())
    # Draw the lowest scores first so the most confident boxes end up on top.
    for idx in np.argsort(prediction.scores, kind="stable"):
        label = int(prediction.labels[idx])
        colour = colours[label % len(colours)]
        x1, y1, x2, y2 = prediction.boxes[idx]
        # Continuous edges -> the first and last covered pixel (inclusive) for OpenCV.
        p1 = (int(np.clip(np.floor(x1), 0, w - 1)), int(np.clip(np.floor(y1), 0, h - 1)))
        p2 = (int(np.clip(np.ceil(x2) - 1, 0, w - 1)), int(np.clip(np.ceil(y2) - 1, 0, h - 1)))
        cv2.rectangle(canvas, p1, p2, colour, style.line_width, cv2.LINE_8)
        text = f"{prediction.class_names[label]} {float(prediction.scores[idx]):.2f}"
        (tw, th), baseline = cv2.getTextSize(text, _FONT, style.font_scale, style.font_thickness)
        pad = max(1, style.line_width)
        box_h = th + baseline + 2 * pad
        # Above the box when it fits, else just inside its top edge; never off the image.
        top = p1[1] - box_h if p1[1] - box_h >= 0 else p1[1]
        top = int(min(max(top, 0), max(h - box_h, 0)))
        left = int(min(max(p1[0], 0), max(w - tw - 2 * pad, 0)))
        cv2.rectangle(canvas, (left, top), (left + tw + 2 * pad, top + box_h), colour, cv2.FILLED)
        cv2.putText(
            canvas,
            text,
            (left + pad, top + pad + th),
            _FONT,
            style.font_scale,
            _text_colour(colour),
            style.font_thickness,
            cv2.LINE_AA,
        )
    return canvas


def tile_images(images: list[np.ndarray], columns: int = 4, cell: int = 256, fill: int = 114) -> np.ndarray:
    """Tile images (uint8 ``(H, W, 3)``, any sizes) into one grid image, each fitted into a ``cell``
    square with its aspect kept (grey ``fill`` around it), ``columns`` per row."""
    if not images:
        raise ValueError("tile_images needs at least one image")
    rows = (len(images) + columns - 1) // columns
    cols = min(columns, len(images))
    grid = np.full((rows * cell, cols * cell, 3), fill, np.uint8)
    for k, image in enumerate(images):
        h, w = image.shape[:2]
        scale = cell / max(h, w)
        nh, nw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
        resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        r, c = divmod(k, columns)
        y0, x0 = r * cell + (cell - nh) // 2, c * cell + (cell - nw) // 2
        grid[y0 : y0 + nh, x0 : x0 + nw] = resized
    return grid
