"""The ASCII header that opens Prophesee event files (``.dat`` and ``.raw``): lines that start with ``%``.

Both formats begin with lines such as ``% Date 2020-09-25 07:48:29``, ``% evt 3.0``,
``% Width 304``, ``% format EVT3;height=720;width=1280``, ``% geometry 1280x720``,
``% plugin_name hal_plugin_gen41_evk3``, optionally closed by ``% end``. The binary data start
at the first byte after the last such line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from spyolo.errors import EventFileError
from spyolo.events.arrays import SensorSize

__all__ = ["FileHeader", "read_file_header", "read_header"]

_MAX_HEADER_BYTES = 1 << 20  # a header longer than 1 MiB is not a header

# Sensor arrays of the Prophesee generations named in ``plugin_name`` / ``sensor_generation``.
_KNOWN_SENSORS = (
    ("gen41", SensorSize(1280, 720)),
    ("imx636", SensorSize(1280, 720)),
    ("gen4", SensorSize(1280, 720)),
    ("gen31", SensorSize(640, 480)),
    ("gen3", SensorSize(640, 480)),
    ("genx320", SensorSize(320, 320)),
)


@dataclass(frozen=True)
class FileHeader:
    """What the ``%`` lines of a file say.

    Attributes:
        lines: the header lines without ``%`` and surrounding blanks, in order.
        size: bytes of the header (the binary data start there).
        fields: ``key -> value`` of every ``% key value`` line (the first word is the key,
            lower-cased).
    """

    lines: tuple[str, ...]
    size: int
    fields: dict[str, str] = field(default_factory=dict)

    def sensor(self) -> SensorSize | None:
        """The sensor size the header states (width/height keys, ``format``, ``geometry``, or a
        known sensor generation in the plugin name), else ``None``."""
        f = self.fields
        if "width" in f and "height" in f:
            try:
                return SensorSize(int(f["width"]), int(f["height"]))
            except ValueError:
                pass
        fmt = f.get("format", "")
        w = re.search(r"width=(\d+)", fmt)
        h = re.search(r"height=(\d+)", fmt)
        if w and h:
            return SensorSize(int(w.group(1)), int(h.group(1)))
        geometry = re.fullmatch(r"(\d+)\s*x\s*(\d+)", f.get("geometry", ""))
        if geometry:
            return SensorSize(int(geometry.group(1)), int(geometry.group(2)))
        names = " ".join(f.get(k, "") for k in ("plugin_name", "sensor_generation", "camera_integrator_name")).lower()
        for key, size in _KNOWN_SENSORS:
            if key in names:
                return size
        return None

    def encoding(self) -> str | None:
        """``"evt2"``, ``"evt3"`` or ``"evt21"`` when the header names the raw encoding, else ``None``."""
        text = (self.fields.get("evt", "") + " " + self.fields.get("format", "")).lower().replace(" ", "")
        for name, keys in (("evt21", ("2.1", "evt21")), ("evt3", ("3.0", "evt3")), ("evt2", ("2.0", "evt2"))):
            if any(k in text for k in keys):
                return name
        return None


def read_header(f: BinaryIO, path: str | Path, required: bool = True) -> FileHeader:
    """Read the ``%`` lines at the start of ``f`` and leave ``f`` at the first data byte.

    Raises:
        EventFileError: ``required`` and the file does not start with ``%``; a header line
            that is not text or never ends.
    """
    lines: list[str] = []
    fields: dict[str, str] = {}
    start = f.tell()
    while True:
        pos = f.tell()
        first = f.read(1)
        if first != b"%":
            f.seek(pos)
            break
        raw = f.readline(_MAX_HEADER_BYTES)
        if not raw.endswith(b"\n") or pos - start > _MAX_HEADER_BYTES:
            raise EventFileError(f"{path}: the '%' header line at byte {pos} does not end (no newline): "
                                 f"not an event file?")
        try:
            text = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise EventFileError(f"{path}: the '%' header line at byte {pos} is not ASCII text") from None
        lines.append(text)
        if text.lower() == "end":
            break
        key, _, value = text.partition(" ")
        if key:
            fields.setdefault(key.lower(), value.strip())
    if required and not lines:
        raise EventFileError(f"{path}: no '%' header: not a Prophesee event file")
    return FileHeader(tuple(lines), f.tell() - start, fields)


def read_file_header(path: Path) -> tuple[FileHeader, int]:
    """The header of the event file ``path`` and the file's size in bytes.

    Raises:
        EventFileError: a missing or unreadable file, or a bad header (see :func:`read_header`).
    """
    if not path.is_file():
        raise EventFileError(f"{path}: event file not found")
    try:
        with open(path, "rb") as f:
            header = read_header(f, path)
            f.seek(0, 2)
            return header, f.tell()
    except OSError as exc:
        raise EventFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
