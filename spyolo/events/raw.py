"""Prophesee ``.raw`` recordings in EVT 2.0 and EVT 3.0: vectorised, exact decoders (numpy only).

Both encodings follow an ASCII ``%`` header (:mod:`spyolo.events.header`) that names the
encoding (``% evt 3.0``, ``% format EVT3;...``) and, usually, the sensor. Words are
little-endian; the top four bits of a word are its type.

**EVT 2.0** (32-bit words): type 0 / 1 = an OFF / ON event with bits 27-22 the six low bits
of its time, bits 21-11 ``x``, bits 10-0 ``y``; type 8 = TIME_HIGH, bits 27-0 the time's
bits 33-6. ``t = time_high << 6 | low``. Other types (triggers, vendor words) carry no CD event.

**EVT 3.0** (16-bit words, a state machine): type 0 = ADDR_Y (bits 10-0: the current row);
2 = ADDR_X (one event at column bits 10-0, polarity bit 11, on the current row and time);
3 = VECT_BASE_X (base column and polarity of the vectors that follow); 4 = VECT_12 and
5 = VECT_8 (a 12- or 8-bit mask: one event at ``base + i`` for every set bit ``i``, then the
base moves on by 12 or 8); 6 = TIME_LOW and 8 = TIME_HIGH (the low and high 12 bits of a
24-bit time). A TIME_HIGH smaller than the one before means the 24-bit counter wrapped:
``2**24`` us are added from there on.

Two time rules (:data:`EVT3_TIME_RULES`):

* ``"prophesee"`` (the default): the format's definition above, ``t = high << 12 | low``.
* ``"expelliarmus"``: the rule of the ``expelliarmus`` reader (1.1.12), which also counts every
  decrease of TIME_LOW as a wrap of the low 12 bits (``+4096`` us from there on). In a real Gen4.1
  stream TIME_LOW also steps back by a few microseconds, and the low bits wrap right after
  TIME_HIGH has moved on, so this rule adds 4096 us at each such word: the Prophesee EVT 3.0
  sample's events span 8.801 ms under the first rule and 53.857 ms under this one (its TIME_HIGH
  words only go from 0xB2D to 0xB2F). It exists to compare with arrays that reader decoded.

The decoders never loop over words in Python: the state machine becomes forward fills
(``numpy.maximum.accumulate`` of the positions of the last word of each kind) and cumulative
sums, and a vector's mask is expanded with one boolean matrix. Events before the first
TIME_HIGH (and, in EVT 3.0, before the first ADDR_Y) have no defined time or row and are
dropped, as Prophesee's decoders drop them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spyolo.errors import EventFileError
from spyolo.events.arrays import SensorSize, check_time_order, make_events
from spyolo.events.header import FileHeader, read_file_header

__all__ = ["EVT3_TIME_RULES", "RAW_ENCODINGS", "RawRecording", "decode_evt2", "decode_evt3", "read_raw"]

RAW_ENCODINGS = ("evt2", "evt3")
EVT3_TIME_RULES = ("prophesee", "expelliarmus")


def _last_index(mask: np.ndarray) -> np.ndarray:
    """For each position, the index of the last ``True`` at or before it (-1 if none)."""
    idx = np.where(mask, np.arange(mask.size), -1)
    return np.maximum.accumulate(idx) if idx.size else idx


def _wrapped(high: np.ndarray, is_high: np.ndarray, bits: int) -> np.ndarray:
    """Time-high values made monotonic: every decrease between consecutive TIME_HIGH words adds ``2**bits``."""
    values = high[is_high].astype(np.int64)
    loops = np.concatenate([[0], np.cumsum(np.diff(values) < 0)]) if values.size else values
    out = np.zeros(high.size, dtype=np.int64)
    out[is_high] = values + (loops << bits)
    return out


def decode_evt2(data: bytes | np.ndarray) -> np.ndarray:
    """Decode EVT 2.0 words (the bytes after the header) into an event array."""
    buf = (np.frombuffer(data, dtype="<u4") if isinstance(data, (bytes, bytearray, memoryview))
           else np.asarray(data, "<u4"))
    kind = buf >> 28
    is_high = kind == 0x8
    high = _wrapped(buf & 0x0FFFFFFF, is_high, 28)
    last_high = _last_index(is_high)
    cd = ((kind == 0x0) | (kind == 0x1)) & (last_high >= 0)
    words = buf[cd]
    t = (high[last_high[cd]] << 6) | ((words >> 22) & 0x3F).astype(np.int64)
    return make_events(t, ((words >> 11) & 0x7FF).astype(np.int16), (words & 0x7FF).astype(np.int16),
                       kind[cd].astype(np.uint8))


def decode_evt3(data: bytes | np.ndarray, time_rule: str = "prophesee") -> np.ndarray:
    """Decode EVT 3.0 words (the bytes after the header) into an event array (``time_rule``: see
    the module docstring)."""
    if time_rule not in EVT3_TIME_RULES:
        raise ValueError(f"unknown EVT 3.0 time rule {time_rule!r}; valid: {', '.join(EVT3_TIME_RULES)}")
    buf = (np.frombuffer(data, dtype="<u2") if isinstance(data, (bytes, bytearray, memoryview))
           else np.asarray(data, "<u2"))
    kind = buf >> 12
    payload = (buf & 0x0FFF).astype(np.int64)
    is_y, is_x, is_base = kind == 0x0, kind == 0x2, kind == 0x3
    is_v12, is_v8 = kind == 0x4, kind == 0x5
    is_low, is_high = kind == 0x6, kind == 0x8

    last_y, last_low, last_high, last_base = (_last_index(m) for m in (is_y, is_low, is_high, is_base))
    high = _wrapped(payload, is_high, 12)
    emits = (is_x | is_v12 | is_v8) & (last_y >= 0) & (last_high >= 0)
    # Vectors: base column = the last VECT_BASE_X plus 12 / 8 for every vector word since it.
    step = np.where(is_v12, 12, 0) + np.where(is_v8, 8, 0)
    before = np.cumsum(step) - step  # steps of the vector words strictly before each word
    vector = (is_v12 | is_v8) & (last_base >= 0)
    emits &= is_x | vector

    w = np.flatnonzero(emits)
    base = np.where(is_x[w], payload[w] & 0x7FF, 0)
    vb = last_base[w]
    vec = ~is_x[w]
    base[vec] = (payload[vb[vec]] & 0x7FF) + before[w[vec]] - before[vb[vec]]
    polarity = np.where(is_x[w], payload[w] >> 11, payload[np.maximum(vb, 0)] >> 11) & 1
    mask = np.where(is_x[w], 1, np.where(is_v12[w], payload[w], payload[w] & 0xFF))
    bits = ((mask[:, None] >> np.arange(12)) & 1).astype(bool)
    row, col = np.nonzero(bits)  # row-major: word order, then bit order
    src = w[row]
    low = np.where(last_low[src] >= 0, payload[np.maximum(last_low[src], 0)], 0)
    t = (high[last_high[src]] << 12) | low
    if time_rule == "expelliarmus":  # + 4096 us for every decrease of TIME_LOW so far
        lows = payload[is_low]
        wrap = np.zeros(buf.size, dtype=np.int64)
        wrap[np.flatnonzero(is_low)] = np.diff(lows, prepend=0) < 0
        t += np.cumsum(wrap)[src] << 12
    return make_events(t, (base[row] + col).astype(np.int16), (payload[last_y[src]] & 0x7FF).astype(np.int16),
                       polarity[row].astype(np.uint8))


class RawRecording:
    """A Prophesee ``.raw`` file in EVT 2.0 or EVT 3.0, decoded whole on :meth:`read`.

    Args:
        path: the file.
        sensor: the sensor size when the header does not give one (a header that does wins).
        encoding: ``"evt2"`` / ``"evt3"`` when the header does not name it.
        time_rule: EVT 3.0's time rule (:data:`EVT3_TIME_RULES`; module docstring).

    Raises:
        EventFileError: missing file, no ``%`` header, an encoding the header does not name
            (and ``encoding`` does not give) or spyolo does not decode, a data part that is not
            a whole number of words (truncated).
    """

    def __init__(self, path: str | Path, sensor: SensorSize | None = None, encoding: str | None = None,
                 time_rule: str = "prophesee") -> None:
        if time_rule not in EVT3_TIME_RULES:
            raise ValueError(f"unknown EVT 3.0 time rule {time_rule!r}; valid: {', '.join(EVT3_TIME_RULES)}")
        self.time_rule = time_rule
        self.path = Path(path)
        self.header: FileHeader
        self.header, _size = read_file_header(self.path)
        with open(self.path, "rb") as f:
            f.seek(self.header.size)
            self._data = f.read()
        found = self.header.encoding()
        self.encoding = found or encoding
        if self.encoding not in RAW_ENCODINGS:
            named = f"names {found!r}" if found else "names no encoding ('% evt 3.0' or '% format EVT3')"
            raise EventFileError(f"{self.path}: the header {named}; spyolo decodes EVT 2.0 and EVT 3.0 .raw files")
        word = 4 if self.encoding == "evt2" else 2
        if len(self._data) % word:
            raise EventFileError(
                f"{self.path}: truncated: {len(self._data)} bytes of {self.encoding.upper()} data is not a whole "
                f"number of {word}-byte words")
        self.sensor = self.header.sensor() or sensor

    def read(self) -> np.ndarray:
        """Every CD event, in file order; checked for time order."""
        ev = decode_evt2(self._data) if self.encoding == "evt2" else decode_evt3(self._data, self.time_rule)
        check_time_order(ev["t"], self.path)
        if self.sensor is not None and len(ev):
            outside = (ev["x"] >= self.sensor.width) | (ev["y"] >= self.sensor.height)
            if outside.any():
                i = int(np.argmax(outside))
                raise EventFileError(
                    f"{self.path}: event {i} at ({int(ev['x'][i])}, {int(ev['y'][i])}) lies outside the {self.sensor} "
                    f"sensor")
        return ev


def read_raw(path: str | Path, sensor: SensorSize | None = None) -> np.ndarray:
    """Every event of an EVT 2.0 / EVT 3.0 ``.raw`` file (see :class:`RawRecording`)."""
    return RawRecording(path, sensor).read()
