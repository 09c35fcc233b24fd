"""Atomic file writes: every file spyolo writes goes through :func:`atomic_write`.

A write goes to a temporary file in the destination's folder (``.<name>.<random>.tmp``), is
flushed and fsync'ed, gets the permissions a plain ``open(path, "w")`` would give (``0o666``
less the umask), and is then moved over the destination with :func:`os.replace`. A reader
therefore sees the old file or the complete new one, never a half-written one; on any error
(a full disk, an interrupt) the temporary file is removed and the old file is left as it was.
A process killed outright (``kill -9``) can leave a temporary file behind:
:func:`remove_stale_temps` clears those. :func:`atomic_write_files` writes several files that
belong together (an ONNX model and its sidecar): all or none of them.

A write that fails in the file system (a full disk, no permission, a folder standing where the
file should be) raises :class:`~spyolo.errors.FileWriteError`, which names the destination (never
the temporary file) and says that the previous file is unchanged.
"""

from __future__ import annotations

import errno
import io
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from spyolo.errors import FileWriteError

__all__ = [
    "atomic_save_figure",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_files",
    "atomic_write_image",
    "atomic_write_json",
    "atomic_write_text",
    "atomic_torch_save",
    "encode_image",
    "file_mode",
    "json_bytes",
    "remove_stale_temps",
    "temp_prefix",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The permissions a plain ``open(path, "w")`` gives a new file: ``0o666`` less the umask."""
    return 0o666 & ~_umask()


def temp_prefix(path: str | Path) -> str:
    """Name prefix of the temporary files :func:`atomic_write` makes for ``path``."""
    return f".{Path(path).name}."


def _write_error(path: Path, exc: OSError, existed: bool) -> FileWriteError:
    kept = "the previous file is unchanged" if existed else "nothing was written"
    return FileWriteError(exc.errno, exc.strerror or str(exc), str(path), kept)


def _check_destination(path: Path) -> None:
    if path.is_dir():
        raise FileWriteError(errno.EISDIR, "a folder of that name exists; name a file, not a folder", str(path),
                             "nothing was written")


def _write_temp(path: Path, write: Callable[[IO[bytes]], None]) -> str:
    """Fill a temporary file beside ``path`` with ``write`` (flushed, fsync'ed, normal permissions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
    except BaseException:
        _unlink(tmp)
        raise
    return tmp


def _unlink(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` atomically: ``write(f)`` fills a temporary binary file, then it replaces ``path``.

    The destination's folder is created if missing. Returns ``path`` as a :class:`Path`.

    Raises:
        FileWriteError: from the file system, naming ``path`` (the destination is unchanged and no
            temporary file is left).
    """
    return atomic_write_files([(path, write)])[0]


Content = bytes | Callable[[IO[bytes]], None]
"""What :func:`atomic_write_files` writes into a file: bytes, or a function that fills a binary file."""


def atomic_write_files(items: Sequence[tuple[str | Path, Content]]) -> list[Path]:
    """Write several files atomically and together: every temporary file is written first, and only
    when all succeeded do they replace their destinations (in order). A failure while writing leaves
    every destination as it was (a failure of the final renames themselves, which need no disk
    space, is the only way to get some of them).

    Raises:
        FileWriteError: as :func:`atomic_write`, naming the destination that failed.
    """
    paths = [Path(path) for path, _write in items]
    for path in paths:
        _check_destination(path)
    temps: list[str] = []
    try:
        for path, (_path, content) in zip(paths, items):
            existed = path.exists()
            write = content if callable(content) else (lambda f, data=content: f.write(data))
            try:
                temps.append(_write_temp(path, write))
            except OSError as exc:
                raise _write_error(path, exc, existed) from exc
        for path, tmp in zip(paths, temps):
            existed = path.exists()
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise _write_error(path, exc, existed) from exc
    except BaseException:
        for tmp in temps:
            _unlink(tmp)
        raise
    return paths


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode(encoding))


def json_bytes(obj: Any, indent: int | None = 2) -> bytes:
    """``obj`` as UTF-8 JSON text (strict: NaN and infinities are an error) with a final newline."""
    return (json.dumps(obj, indent=indent, allow_nan=False) + "\n").encode("utf-8")


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (:func:`json_bytes`) atomically."""
    return atomic_write_bytes(path, json_bytes(obj, indent))


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically.

    The archive is built in memory first, so that a disk that fills up is reported as the
    operating system's error on ``path`` (torch's archive writer would report a position error).
    """
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with buffer.getbuffer() as view:
        return atomic_write(path, lambda f: f.write(view))


def atomic_save_figure(fig: Any, path: str | Path, dpi: int = 100) -> Path:
    """Render a matplotlib :class:`~matplotlib.figure.Figure` (Agg, no display) to ``path`` atomically.

    The format comes from the suffix (``.png`` by default).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    return atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi))


def encode_image(path: str | Path, image_bgr: Any) -> bytes:
    """A BGR image encoded by OpenCV in the format of ``path``'s suffix.

    Raises:
        FileWriteError: OpenCV has no encoder for the suffix (or the image cannot be encoded).
    """
    import cv2

    suffix = Path(path).suffix.lower()
    ok, buf = cv2.imencode(suffix, image_bgr)
    if not ok:
        raise FileWriteError(None, f"OpenCV cannot encode an image as {suffix or '(no suffix)'}", str(path),
                             "nothing written")
    return buf.tobytes()


def atomic_write_image(path: str | Path, image_bgr: Any) -> Path:
    """Encode a BGR image (:func:`encode_image`) and write it atomically."""
    return atomic_write_bytes(path, encode_image(path, image_bgr))


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
