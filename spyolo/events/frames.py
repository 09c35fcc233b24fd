"""Event representations over timesteps: the events of a window cut into T bins of polarity frames.

A labelled time stamp ``t`` becomes the events of ``[t - window, t)``, cut into ``T`` equal
bins by time; bin ``k`` holds the events with ``t - window + k * window / T <= t_e <
t - window + (k + 1) * window / T``. Each bin is a 2-channel frame (channel 0: OFF events,
channel 1: ON events) of

* ``count``: the number of events per pixel, or
* ``binary``: 1 where a pixel had at least one event.

Bin ``k`` is the input of timestep ``k`` (SPYv4); the ANN twin reads the ``T`` bins stacked as
``2T`` channels.

Geometry (:class:`FrameGeometry`): the sensor frame is placed at the top-left corner of the
square network input and the rest is zero. ``pad`` keeps sensor pixels 1:1 (the sensor must fit
in the input); ``scale`` maps event coordinates by ``img_size / max(width, height)`` first (an
event at column ``x`` lands in column ``floor(x * new_width / width)``; events of merged pixels
add up), for sensors larger than the input. Boxes move by the same factor: the geometry's
``letterbox`` is ``(scale, 0, 0)`` in the convention of :mod:`spyolo.data.transforms`.

Binning is one ``numpy.bincount`` over the window's events: no Python loop over events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spyolo.errors import ConfigError
from spyolo.events.arrays import SensorSize

__all__ = ["EVENT_REPRESENTATIONS", "EVENT_RESIZE_MODES", "FrameGeometry", "bin_events", "render_frame"]

EVENT_REPRESENTATIONS = ("count", "binary")
EVENT_RESIZE_MODES = ("pad", "scale")


@dataclass(frozen=True)
class FrameGeometry:
    """How sensor pixels map into the ``img_size`` x ``img_size`` network input.

    Raises:
        ValueError: an unknown mode, or ``pad`` with a sensor larger than the input.
    """

    sensor: SensorSize
    img_size: int
    resize: str = "pad"

    def __post_init__(self) -> None:
        if self.resize not in EVENT_RESIZE_MODES:
            raise ValueError(f"event resize must be one of {', '.join(EVENT_RESIZE_MODES)}, got {self.resize!r}")
        if self.resize == "pad" and (self.sensor.width > self.img_size or self.sensor.height > self.img_size):
            raise ConfigError(
                f"the {self.sensor} sensor does not fit in a {self.img_size} px input without scaling: set "
                f"data.img_size >= {max(self.sensor.width, self.sensor.height)} or data.event_resize=scale")

    @property
    def scale(self) -> float:
        return 1.0 if self.resize == "pad" else self.img_size / max(self.sensor.width, self.sensor.height)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the sensor's area in the input."""
        s = self.scale
        return (min(self.img_size, max(1, round(self.sensor.width * s))),
                min(self.img_size, max(1, round(self.sensor.height * s))))

    @property
    def letterbox(self) -> tuple[float, int, int]:
        """``(scale, pad_x, pad_y)`` for :func:`spyolo.data.transforms.map_boxes` / ``unmap_boxes``."""
        return (self.scale, 0, 0)

    def columns_rows(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Input column and row of sensor pixels ``(x, y)``."""
        if self.resize == "pad":
            return x.astype(np.int64), y.astype(np.int64)
        w, h = self.size
        cols = (x.astype(np.int64) * w) // self.sensor.width
        rows = (y.astype(np.int64) * h) // self.sensor.height
        return cols, rows


def bin_events(events: np.ndarray, t_end: int, window_us: int, bins: int, geometry: FrameGeometry,
               representation: str = "count", flip: bool = False) -> np.ndarray:
    """The ``(bins, 2, S, S)`` float32 frames of the events of ``[t_end - window_us, t_end)``.

    Args:
        events: an :data:`~spyolo.events.arrays.EVENT_DTYPE` array; events outside the window
            or the sensor are ignored.
        t_end: the end of the window (the labelled time stamp), us.
        window_us: the window's duration, us (> 0).
        bins: ``T``.
        geometry: sensor to input mapping.
        representation: ``count`` or ``binary``.
        flip: mirror left-right (column ``x`` becomes ``width - 1 - x``; a training augmentation).
    """
    if representation not in EVENT_REPRESENTATIONS:
        raise ValueError(f"event representation must be one of {', '.join(EVENT_REPRESENTATIONS)}, "
                         f"got {representation!r}")
    if window_us <= 0 or bins < 1:
        raise ValueError(f"need window_us > 0 and bins >= 1, got {window_us} and {bins}")
    s = geometry.img_size
    t0 = int(t_end) - int(window_us)
    t = events["t"].astype(np.int64)
    x, y = events["x"].astype(np.int64), events["y"].astype(np.int64)
    keep = (t >= t0) & (t < t_end) & (x >= 0) & (y >= 0) & (x < geometry.sensor.width) & (y < geometry.sensor.height)
    t, x, y, p = t[keep], x[keep], y[keep], events["p"][keep].astype(np.int64)
    if flip:
        x = geometry.sensor.width - 1 - x
    k = np.minimum(((t - t0) * bins) // int(window_us), bins - 1)
    cols, rows = geometry.columns_rows(x, y)
    flat = ((k * 2 + np.minimum(p, 1)) * s + rows) * s + cols
    counts = np.bincount(flat, minlength=bins * 2 * s * s).reshape(bins, 2, s, s)
    if representation == "binary":
        return (counts > 0).astype(np.float32)
    return counts.astype(np.float32)


def render_frame(frames: np.ndarray, size: tuple[int, int] | None = None, upscale: int = 1) -> np.ndarray:
    """A BGR picture of event frames: dark grey background, ON events white, OFF events blue.

    Args:
        frames: ``(2, H, W)`` or ``(T, 2, H, W)`` (summed over T) polarity frames.
        size: ``(width, height)`` of the top-left part to show (the sensor's area), else all.
        upscale: nearest-neighbour magnification.
    """
    f = np.asarray(frames)
    if f.ndim == 4:
        f = f.sum(axis=0)
    if size is not None:
        f = f[:, : size[1], : size[0]]
    off, on = f[0] > 0, f[1] > 0
    image = np.full(off.shape + (3,), 40, dtype=np.uint8)
    image[off] = (255, 160, 40)
    image[on] = (255, 255, 255)
    image[off & on] = (230, 200, 150)
    if upscale > 1:
        image = np.repeat(np.repeat(image, upscale, axis=0), upscale, axis=1)
    return image
