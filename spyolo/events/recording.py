"""One event recording, whatever its file format: the events of a time window, the sensor, the labels.

:func:`open_recording` opens a Gen1 ``.dat`` (memory-mapped: windows are read in place) or a
Prophesee ``.raw`` (EVT 2.0 / 3.0, decoded whole) and returns an :class:`EventRecording`.
A ``.dat`` named ``NAME_td.dat`` has its labels, when present, in ``NAME_bbox.npy`` beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spyolo.errors import EventFileError
from spyolo.events.arrays import SensorSize
from spyolo.events.boxes import BoxLabels, read_boxes
from spyolo.events.dat import DatFile
from spyolo.events.raw import RawRecording

__all__ = ["EVENT_FILE_SUFFIXES", "EventRecording", "labels_path", "open_recording"]

EVENT_FILE_SUFFIXES = frozenset({".dat", ".raw"})
"""File suffixes read as event recordings (by the demo and the datasets)."""


def labels_path(dat_path: str | Path) -> Path:
    """``NAME_bbox.npy`` for ``NAME_td.dat`` (Gen1's naming)."""
    p = Path(dat_path)
    stem = p.name[: -len("_td.dat")] if p.name.endswith("_td.dat") else p.stem
    return p.with_name(f"{stem}_bbox.npy")


class EventRecording:
    """Events of a recording by time window.

    Attributes:
        path: the event file.
        sensor: the sensor size (from the header, else the ``sensor`` argument of
            :func:`open_recording`).
        start_us, end_us: the first and last event time.
    """

    def __init__(self, path: Path, sensor: SensorSize, dat: DatFile | None, events: np.ndarray | None) -> None:
        self.path = path
        self.sensor = sensor
        self._dat = dat
        self._events = events
        if dat is not None:
            self.start_us, self.end_us = dat.time_range()
        else:
            assert events is not None
            self.start_us = int(events["t"][0]) if len(events) else 0
            self.end_us = int(events["t"][-1]) if len(events) else 0

    def window(self, t0: int, t1: int) -> np.ndarray:
        """Events with ``t0 <= t < t1``."""
        if self._dat is not None:
            return self._dat.window(t0, t1)
        assert self._events is not None
        lo, hi = np.searchsorted(self._events["t"], [t0, t1], side="left")
        return self._events[lo:hi]

    def verify(self) -> None:
        """Read the whole file once (time order, polarity bits); raise naming the first bad event."""
        if self._dat is not None:
            self._dat.verify()

    def labels(self) -> BoxLabels | None:
        """The Gen1 box labels beside a ``.dat`` (``None`` when there are none)."""
        if self._dat is None:
            return None
        path = labels_path(self.path)
        return read_boxes(path, self.sensor) if path.is_file() else None


def open_recording(path: str | Path, sensor: SensorSize | None = None, time_rule: str = "prophesee") -> EventRecording:
    """Open a ``.dat`` or ``.raw`` event file (``sensor``: when the header states none).

    Raises:
        EventFileError: an unknown suffix, a bad file (see :class:`~spyolo.events.dat.DatFile`,
            :class:`~spyolo.events.raw.RawRecording`), or no sensor size anywhere.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".dat":
        dat = DatFile(path, sensor)
        found, events = dat.sensor, None
    elif suffix == ".raw":
        raw = RawRecording(path, sensor, time_rule=time_rule)
        dat, found, events = None, raw.sensor, raw.read()
    else:
        raise EventFileError(f"{path}: not an event recording (expected a Gen1 .dat or a Prophesee .raw file)")
    if found is None:
        raise EventFileError(f"{path}: the header states no sensor size; give it (data.event_sensor=[WIDTH, HEIGHT])")
    return EventRecording(path, found, dat, events)
