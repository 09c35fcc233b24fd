"""Gen1 ``*_bbox.npy`` box labels: read (checked against the sensor), write, group by time stamp.

A label file is a numpy structured array, one row per box, sorted by time: ``ts`` (or ``t``,
microseconds, the time the box describes), ``x``, ``y`` (top-left corner, sensor pixels),
``w``, ``h``, ``class_id`` and, unused here, ``confidence`` (or ``class_confidence``) and
``track_id``. All the boxes of one time stamp form one labelled sample.

A box that reaches past the sensor's edge is clipped to it (objects entering the field of
view); one with no part on the sensor, a non-positive or non-finite size, a negative class or
a time stamp earlier than the row before is an error naming the file and the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from spyolo.errors import EventFileError
from spyolo.events.arrays import SensorSize
from spyolo.utils.io import atomic_write

__all__ = ["GEN1_BOX_DTYPE", "BoxLabels", "read_boxes", "write_boxes"]

GEN1_BOX_DTYPE = np.dtype([("ts", "<u8"), ("x", "<f4"), ("y", "<f4"), ("w", "<f4"), ("h", "<f4"),
                           ("class_id", "u1"), ("confidence", "<f4"), ("track_id", "<u4")])
"""The row layout spyolo writes (the Gen1 files' layout)."""


@dataclass(frozen=True)
class BoxLabels:
    """The boxes of one recording.

    Attributes:
        t: (N,) int64 time stamps (us), non-decreasing.
        boxes: (N, 4) float32 ``x1, y1, x2, y2`` in continuous sensor pixels (clipped to it).
        labels: (N,) int64 class ids.
        clipped: how many boxes were clipped to the sensor.
    """

    t: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    clipped: int = 0

    def times(self) -> np.ndarray:
        """The distinct labelled time stamps, in order."""
        return np.unique(self.t)

    def at(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """``(boxes, labels)`` of time stamp ``t`` (empty arrays if it has none)."""
        lo, hi = np.searchsorted(self.t, [t, t + 1])
        return self.boxes[lo:hi], self.labels[lo:hi]


def _field(arr: np.ndarray, names: tuple[str, ...], path: Path) -> np.ndarray:
    for name in names:
        if name in arr.dtype.names:
            return arr[name]
    raise EventFileError(f"{path}: box labels have no {' or '.join(repr(n) for n in names)} field "
                         f"(fields: {', '.join(arr.dtype.names)})")


def read_boxes(path: str | Path, sensor: SensorSize) -> BoxLabels:
    """Read and check a Gen1 ``_bbox.npy`` file (see the module docstring).

    Raises:
        EventFileError: missing or unreadable file, not a structured array with the fields
            above, or a bad row (named by index).
    """
    path = Path(path)
    if not path.is_file():
        raise EventFileError(f"{path}: box label file not found")
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise EventFileError(
            f"{path}: not a readable .npy array ({' '.join(str(exc).split()) or type(exc).__name__})"
        ) from None
    if arr.dtype.names is None or arr.ndim != 1:
        raise EventFileError(f"{path}: expected a 1-D structured array of boxes, got dtype {arr.dtype} "
                             f"with shape {arr.shape}")
    t = _field(arr, ("ts", "t"), path).astype(np.int64)
    x, y, w, h = (_field(arr, (k,), path).astype(np.float64) for k in ("x", "y", "w", "h"))
    cls = _field(arr, ("class_id",), path).astype(np.int64)

    def fail(mask: np.ndarray, problem: str) -> None:
        if mask.any():
            i = int(np.argmax(mask))
            raise EventFileError(f"{path}: box {i} (t={int(t[i])} us, x={x[i]:g}, y={y[i]:g}, w={w[i]:g}, "
                                 f"h={h[i]:g}): {problem}")

    fail(~np.isfinite(x) | ~np.isfinite(y) | ~np.isfinite(w) | ~np.isfinite(h), "non-finite coordinates")
    fail((w <= 0) | (h <= 0), "width and height must be positive")
    fail(cls < 0, "negative class_id")
    fail(t < 0, "negative time stamp")
    if len(t) > 1:
        fail(np.concatenate([[False], np.diff(t) < 0]), "time stamp earlier than the box before (rows out of order)")
    x2, y2 = x + w, y + h
    fail((x2 <= 0) | (y2 <= 0) | (x >= sensor.width) | (y >= sensor.height),
         f"lies entirely outside the {sensor} sensor")
    boxes = np.stack([np.clip(x, 0, sensor.width), np.clip(y, 0, sensor.height),
                      np.clip(x2, 0, sensor.width), np.clip(y2, 0, sensor.height)], axis=1)
    clipped = int(np.sum((x < 0) | (y < 0) | (x2 > sensor.width) | (y2 > sensor.height)))
    return BoxLabels(t, boxes.astype(np.float32).reshape(-1, 4), cls, clipped)


def write_boxes(path: str | Path, t: np.ndarray, boxes_xyxy: np.ndarray, labels: np.ndarray,
                track_ids: np.ndarray | None = None) -> Path:
    """Write boxes as a Gen1 ``_bbox.npy`` file (:data:`GEN1_BOX_DTYPE`, confidence 1), atomically."""
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    rows = np.zeros(len(b), dtype=GEN1_BOX_DTYPE)
    rows["ts"] = np.asarray(t, dtype=np.int64)
    rows["x"], rows["y"] = b[:, 0], b[:, 1]
    rows["w"], rows["h"] = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    rows["class_id"] = np.asarray(labels, dtype=np.int64)
    rows["confidence"] = 1.0
    rows["track_id"] = np.arange(len(b)) if track_ids is None else np.asarray(track_ids)

    def write(f: BinaryIO) -> None:
        np.save(f, rows, allow_pickle=False)

    return atomic_write(path, write)
