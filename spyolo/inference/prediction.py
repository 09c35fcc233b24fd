"""The detections of one image, in original-image pixels: :class:`Prediction`.

Box convention (:attr:`Prediction.boxes` and the JSON): ``x1, y1, x2, y2`` in *continuous*
pixel coordinates of the original image: ``(0, 0)`` is the top-left corner of the top-left
pixel and ``(width, height)`` the bottom-right corner of the bottom-right pixel, so a box
covering pixel columns ``i..j`` has ``x1 = i`` and ``x2 = j + 1``. Boxes are clipped to
``[0, width] x [0, height]``. PASCAL VOC files use 1-based inclusive pixels, which is
``(x1 + 1, y1 + 1, x2, y2)``: see :meth:`Prediction.voc_boxes`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BOX_FORMAT", "Prediction"]

BOX_FORMAT = "xyxy_continuous_pixels"
"""Name of the box convention written into every JSON record (see the module docstring)."""


@dataclass(frozen=True, eq=False)
class Prediction:
    """Detections of one image, in original-image pixels.

    Attributes:
        boxes: float32 ``(N, 4)``, ``x1, y1, x2, y2`` in continuous pixel coordinates
            (see the module docstring), sorted by descending score.
        scores: float32 ``(N,)``, objectness x class probability.
        labels: int64 ``(N,)`` class indices.
        class_names: all class names of the model (``labels`` index into them).
        image_size: ``(height, width)`` of the original image.
        source: the file the image came from, when it was given as a path.
        image: the original image, RGB uint8 ``(H, W, 3)``, kept for :meth:`plot` and
            :meth:`save` (the :class:`~spyolo.inference.Detector` sets it; ``None`` otherwise).
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    image_size: tuple[int, int]
    source: str | None = field(default=None)
    image: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def names(self) -> list[str]:
        """Class name of each detection."""
        return [self.class_names[int(i)] for i in self.labels]

    def voc_boxes(self) -> np.ndarray:
        """The boxes in PASCAL VOC convention (1-based inclusive pixels): ``(x1+1, y1+1, x2, y2)``."""
        out = self.boxes.astype(np.float32).copy()
        out[:, :2] += 1.0
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: image size, box convention and one record per detection."""
        height, width = self.image_size
        return {
            "image": self.source,
            "width": int(width),
            "height": int(height),
            "box_format": BOX_FORMAT,
            "detections": [
                {
                    "label": int(label),
                    "name": self.class_names[int(label)],
                    "score": round(float(score), 6),
                    "box": [round(float(v), 3) for v in box],
                }
                for box, score, label in zip(self.boxes, self.scores, self.labels)
            ],
        }

    def plot(self, image: np.ndarray | None = None, rgb: bool = False) -> np.ndarray:
        """The image with the boxes, class names and scores drawn (see :mod:`spyolo.inference.draw`).

        Args:
            image: the image to draw on, RGB uint8 ``(H, W, 3)`` of this prediction's size
                (default: the one the prediction kept).
            rgb: return RGB (for matplotlib or PIL); by default BGR, as OpenCV writes images.

        Raises:
            ValueError: no image was kept and none is given, or its size differs.
        """
        from spyolo.inference.draw import draw_predictions

        source = self.image if image is None else image
        if source is None:
            raise ValueError("this prediction kept no image: pass the image to plot(image)")
        annotated = draw_predictions(np.ascontiguousarray(np.asarray(source)[:, :, ::-1]), self)
        return np.ascontiguousarray(annotated[:, :, ::-1]) if rgb else annotated

    def save(self, path: str | Path, image: np.ndarray | None = None) -> Path:
        """Write :meth:`plot` to ``path`` (format from its suffix: .jpg, .png, ...), atomically.

        A ``.json`` path writes :meth:`to_json` instead.
        """
        from spyolo.utils.io import atomic_write_image, atomic_write_text

        path = Path(path)
        if path.suffix.lower() == ".json":
            return atomic_write_text(path, self.to_json(indent=2) + "\n")
        return atomic_write_image(path, self.plot(image))

    def to_json(self, indent: int | None = None) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)
