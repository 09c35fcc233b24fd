"""Gen1 ``*_td.dat`` event files (Prophesee's DAT layout): read, write, and read windows in place.

Layout: ASCII header lines starting with ``%`` (``% Version 2``, ``% Width 304``,
``% Height 240``, ...), then one byte *event type* and one byte *event size* (8), then the
events, 8 bytes each, little-endian: a uint32 timestamp in microseconds, and a uint32 with
``x`` in bits 0-13, ``y`` in bits 14-27 and the polarity in bits 28-31.

:class:`DatFile` maps the file into memory (``numpy.memmap``) and decodes only the events of a
time window (two binary searches on the timestamps), so a training sample of a one-minute
recording reads a few hundred kilobytes, not the file. Every read checks the time order of
what it decodes; :meth:`DatFile.verify` checks the whole file.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np

from spyolo.errors import EventFileError
from spyolo.events.arrays import EVENT_DTYPE, SensorSize, check_time_order, make_events
from spyolo.events.header import FileHeader, read_file_header
from spyolo.utils.io import atomic_write

__all__ = ["DAT_EVENT_SIZE", "DatFile", "read_dat", "write_dat"]

DAT_EVENT_SIZE = 8
_WORD = np.dtype([("t", "<u4"), ("addr", "<u4")])
_X_MASK, _Y_SHIFT, _Y_MASK, _P_SHIFT = 0x3FFF, 14, 0x3FFF, 28
_EVENT2D_TYPE = 0  # "Event2D", the type byte of the Gen1 files; readers accept any type of size 8


class DatFile:
    """A Gen1 ``.dat`` event file, memory-mapped.

    Args:
        path: the file.
        sensor: the sensor size when the header does not state it (Gen1's headers do not:
            304x240); a header that states one wins.

    Attributes:
        header: the ``%`` lines.
        sensor: the sensor size (``None`` when neither the header nor ``sensor`` gives one).
        count: number of events.

    Raises:
        EventFileError: missing file, no ``%`` header, no type/size bytes, an event size other
            than 8, or a data part that is not a whole number of events (a truncated file).
    """

    def __init__(self, path: str | Path, sensor: SensorSize | None = None) -> None:
        self.path = Path(path)
        self.header: FileHeader
        self.header, end = read_file_header(self.path)
        start = self.header.size + 2
        with open(self.path, "rb") as f:
            f.seek(self.header.size)
            type_size = f.read(2)
        if len(type_size) < 2:
            raise EventFileError(f"{self.path}: the file ends after its header (no event type and size bytes)")
        self.event_type, event_size = type_size[0], type_size[1]
        if event_size != DAT_EVENT_SIZE:
            raise EventFileError(
                f"{self.path}: event size byte is {event_size}, expected {DAT_EVENT_SIZE} (not a Gen1 .dat CD "
                f"event file, or a wrong header)"
            )
        rest = (end - start) % DAT_EVENT_SIZE
        if rest:
            raise EventFileError(
                f"{self.path}: truncated: {end - start} bytes of events is not a whole number of "
                f"{DAT_EVENT_SIZE}-byte events (the last event is cut after {rest} bytes)"
            )
        self.count = (end - start) // DAT_EVENT_SIZE
        self._offset = start
        self.sensor = self.header.sensor() or sensor
        self._words = (np.memmap(self.path, dtype=_WORD, mode="r", offset=start, shape=(self.count,))
                       if self.count else np.zeros(0, dtype=_WORD))

    def __len__(self) -> int:
        return self.count

    @property
    def times(self) -> np.ndarray:
        """The timestamps (uint32, us) as a view of the file."""
        return self._words["t"]

    def time_range(self) -> tuple[int, int]:
        """``(first, last)`` event time in us (``(0, 0)`` for an empty file)."""
        if not self.count:
            return 0, 0
        return int(self._words["t"][0]), int(self._words["t"][-1])

    def _decode(self, lo: int, hi: int) -> np.ndarray:
        words = np.asarray(self._words[lo:hi])
        t = words["t"]
        check_time_order(t, self.path, lo)
        addr = words["addr"]
        x = addr & _X_MASK
        y = (addr >> _Y_SHIFT) & _Y_MASK
        p = addr >> _P_SHIFT
        if p.size and int(p.max()) > 1:
            i = int(np.argmax(p > 1))
            raise EventFileError(f"{self.path}: event {lo + i} has polarity {int(p[i])} (bits 28-31 must be 0 or 1)")
        return make_events(t.astype(np.int64), x.astype(np.int16), y.astype(np.int16), p.astype(np.uint8))

    def read(self) -> np.ndarray:
        """Every event of the file (:data:`~spyolo.events.arrays.EVENT_DTYPE`), checked for time order."""
        return self._decode(0, self.count)

    def window(self, t0: int, t1: int) -> np.ndarray:
        """The events with ``t0 <= t < t1`` (time order checked in the window)."""
        times = self._words["t"]
        lo = int(np.searchsorted(times, max(int(t0), 0), side="left"))
        hi = int(np.searchsorted(times, max(int(t1), 0), side="left"))
        return self._decode(lo, max(lo, hi))

    def verify(self, chunk: int = 1 << 22) -> None:
        """Check the whole file: time order and polarity bits (in chunks; memory stays bounded).

        Raises:
            EventFileError: naming the first bad event.
        """
        previous = None
        for lo in range(0, self.count, chunk):
            hi = min(self.count, lo + chunk)
            t = np.asarray(self._words["t"][lo:hi])
            if previous is not None and t.size and int(t[0]) < previous:
                raise EventFileError(
                    f"{self.path}: events out of time order: event {lo} is at {int(t[0])} us, after event {lo - 1} "
                    f"at {previous} us")
            self._decode(lo, hi)
            previous = int(t[-1]) if t.size else previous


def read_dat(path: str | Path) -> np.ndarray:
    """All events of a Gen1 ``.dat`` file (see :class:`DatFile`)."""
    return DatFile(path).read()


def write_dat(path: str | Path, events: np.ndarray, sensor: SensorSize, comment: str | None = None) -> Path:
    """Write ``events`` as a Gen1 ``.dat`` file, atomically (through :mod:`spyolo.utils.io`).

    The header is ``% Data file containing Event2D events.``, ``% Version 2``, an optional
    comment line, ``% Width W``, ``% Height H``; then the type and size bytes and the events.

    Raises:
        ValueError: events out of time order, outside the sensor, or with a polarity other
            than 0/1 (a file spyolo writes is one it reads back).
    """
    ev = np.asarray(events)
    if ev.dtype != EVENT_DTYPE:
        raise ValueError(f"write_dat needs an EVENT_DTYPE array, got {ev.dtype}")
    t = ev["t"]
    if len(t) and (np.any(np.diff(t) < 0) or int(t[0]) < 0 or int(t[-1]) >= 1 << 32):
        raise ValueError("write_dat: event times must be sorted and in [0, 2**32) us")
    x, y, p = ev["x"].astype(np.int64), ev["y"].astype(np.int64), ev["p"].astype(np.int64)
    if len(t) and (x.min() < 0 or y.min() < 0 or x.max() >= sensor.width or y.max() >= sensor.height):
        raise ValueError(f"write_dat: events outside the {sensor} sensor")
    if len(t) and p.max() > 1:
        raise ValueError("write_dat: polarity must be 0 or 1")
    words = np.empty(len(t), dtype=_WORD)
    words["t"] = t.astype(np.uint32)
    words["addr"] = (x | (y << _Y_SHIFT) | (p << _P_SHIFT)).astype(np.uint32)
    lines = ["Data file containing Event2D events.", "Version 2"]
    if comment:
        lines.append(" ".join(comment.split()))
    lines += [f"Width {sensor.width}", f"Height {sensor.height}"]
    head = "".join(f"% {line}\n" for line in lines).encode("ascii")

    def write(f: BinaryIO) -> None:
        f.write(head)
        f.write(bytes([_EVENT2D_TYPE, DAT_EVENT_SIZE]))
        f.write(words.tobytes())

    return atomic_write(path, write)
