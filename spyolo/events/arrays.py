"""The in-memory form of an event stream, shared by every reader, writer and representation.

Events are a numpy structured array of :data:`EVENT_DTYPE`: ``t`` (int64, microseconds),
``x``, ``y`` (int16, sensor pixels, 0-based from the top-left corner) and ``p`` (uint8
polarity: 1 = ON, a brightness increase; 0 = OFF), sorted by ``t``. It is the layout of
``expelliarmus`` and of the decoded reference arrays of the Prophesee sample files, so
decoded streams compare with ``==``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spyolo.errors import EventFileError

__all__ = ["EVENT_DTYPE", "SensorSize", "check_time_order", "make_events"]

EVENT_DTYPE = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
"""One event: time (us), column, row, polarity."""


@dataclass(frozen=True)
class SensorSize:
    """The pixel array of a sensor: ``width`` columns by ``height`` rows."""

    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(f"a sensor needs a positive width and height, got {self.width}x{self.height}")

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


def make_events(t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """A structured event array from four equally long columns."""
    out = np.empty(len(t), dtype=EVENT_DTYPE)
    out["t"], out["x"], out["y"], out["p"] = t, x, y, p
    return out


def check_time_order(t: np.ndarray, path: str | Path, offset: int = 0) -> None:
    """Raise :class:`EventFileError` naming ``path`` and the first event whose time decreases.

    ``offset`` is the index of ``t[0]`` in the file (for a window of a longer recording).
    """
    if len(t) < 2:
        return
    back = np.flatnonzero(np.diff(t.astype(np.int64)) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise EventFileError(
            f"{path}: events out of time order: event {offset + i} is at {int(t[i])} us, after event "
            f"{offset + i - 1} at {int(t[i - 1])} us ({back.size} such decreases in this part of the file)"
        )
