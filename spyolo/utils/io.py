"""Atomic file writes: every file spyolo writes goes through :func:`atomic_write`.

A write goes to a temporary file in the destination's folder (``.<name>.<random>.tmp``), is
flushed and fsync'ed, gets the permissions a plain ``open(path, "w")`` would give (``0o666``
less the umask), and is then moved over the destination with :func:`os.replace`. A reader
therefore sees the old file or the complete new one, never a half-written one; on any error
(a full disk, an interrupt) the temporary file is removed and the old file is left as it was.
A process killed outright (``kill -9``) can leave a temporary file behind:
:func:`remove_stale_temps` clears those.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_save_figure",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_image",
    "atomic_write_json",
    "atomic_write_text",
    "atomic_torch_save",
    "remove_stale_temps",
    "temp_prefix",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_prefix(path: str | Path) -> str:
    """Name prefix of the temporary files :func:`atomic_write` makes for ``path``."""
    return f".{Path(path).name}."


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` atomically: ``write(f)`` fills a temporary binary file, then it replaces ``path``.

    The destination's folder is created if missing. Returns ``path`` as a :class:`Path`.

    Raises:
        OSError: from the file system (the destination is unchanged and no temporary file is left).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (strict: NaN and infinities are an error) with a final newline."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, allow_nan=False) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f))


def atomic_save_figure(fig: Any, path: str | Path, dpi: int = 100) -> Path:
    """Render a matplotlib :class:`~matplotlib.figure.Figure` (Agg, no display) to ``path`` atomically.

    The format comes from the suffix (``.png`` by default).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    return atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi))


def atomic_write_image(path: str | Path, image_bgr: Any) -> Path:
    """Encode a BGR image with OpenCV in the format of ``path``'s suffix and write it atomically.

    Raises:
        ValueError: OpenCV has no encoder for the suffix (or the image cannot be encoded).
    """
    import cv2

    suffix = Path(path).suffix.lower()
    ok, buf = cv2.imencode(suffix, image_bgr)
    if not ok:
        raise ValueError(f"{path}: OpenCV cannot encode an image as {suffix or '(no suffix)'}")
    return atomic_write_bytes(path, buf.tobytes())


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Delete temporary files an interrupted :func:`atomic_write` of ``path`` left behind.

    Only files named exactly as :func:`atomic_write` names them (``.<name>.<random>.tmp`` in
    the same folder) are removed. Returns the removed paths.
    """
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    prefix = temp_prefix(path)
    for candidate in path.parent.iterdir():
        if candidate.name.startswith(prefix) and candidate.name.endswith(".tmp") and candidate.is_file():
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed
