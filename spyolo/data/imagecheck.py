"""The start-up check of a dataset's images, remembered between runs.

Every image dataset checks all its images when it is built, before training or evaluation
starts: each file exists and is not empty, its header gives its size, and a JPEG or PNG ends
with its end marker (:func:`spyolo.data.images.check_image_file`; the pixels are not decoded).
``decode=True`` (``data.verify_images``) decodes every image whole instead.

The results are kept in a cache keyed by the file's path, size and modification time, so that the
next run on the same files starts at once; a changed file (another size or time) is checked
again. The cache is one JSON file per image folder under ``$SPYOLO_CACHE_DIR/image-checks/``
(default ``$XDG_CACHE_HOME/spyolo`` or ``~/.cache/spyolo``), never inside a dataset, written
atomically. A cache file that cannot be read is ignored (and replaced); one that cannot be
written costs one warning and the next run's time, never the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from spyolo.data.images import check_image_file, read_image_file
from spyolo.errors import ImageReadError

__all__ = ["CACHE_ENV", "ImageCheck", "cache_dir", "check_images"]

log = logging.getLogger(__name__)

CACHE_ENV = "SPYOLO_CACHE_DIR"
"""The environment variable that moves spyolo's cache folder."""

_FORMAT = "spyolo image checks"
_VERSION = 1
_HEADER, _DECODED = 1, 2  # how thoroughly a cached result was checked
_PROGRESS_FROM = 200  # images to check before a progress bar is shown
_warned_unwritable: set[Path] = set()


@dataclass(frozen=True)
class ImageCheck:
    """The size of a checked image, or its problem (one line naming the file)."""

    width: int
    height: int
    problem: str | None = None


def cache_dir() -> Path:
    """spyolo's cache folder: ``$SPYOLO_CACHE_DIR``, else ``$XDG_CACHE_HOME/spyolo``, else ``~/.cache/spyolo``."""
    moved = os.environ.get(CACHE_ENV, "").strip()
    if moved:
        return Path(moved).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "spyolo"


class _FolderCache:
    """The cached checks of the images of one folder: ``name -> [size, mtime_ns, level, width, height, problem]``
    (a problem without the path: the reader may spell the folder otherwise)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.key = str(folder.resolve())
        digest = hashlib.sha256(self.key.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        self.path = cache_dir() / "image-checks" / f"{digest}.json"
        self.entries: dict[str, list] = {}
        self.changed = False
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # no cache yet, or one that cannot be read: checked anew
        if (isinstance(record, dict) and record.get("format") == _FORMAT and record.get("version") == _VERSION
                and record.get("folder") == self.key and isinstance(record.get("files"), dict)):
            self.entries = record["files"]

    def get(self, name: str, size: int, mtime_ns: int, level: int) -> ImageCheck | None:
        entry = self.entries.get(name)
        if not (isinstance(entry, list) and len(entry) == 6 and entry[0] == size and entry[1] == mtime_ns
                and isinstance(entry[2], int) and entry[2] >= level and isinstance(entry[3], int)
                and isinstance(entry[4], int) and (entry[5] is None or isinstance(entry[5], str))):
            return None
        problem = None if entry[5] is None else f"{os.path.join(self.folder, name)}: {entry[5]}"
        return ImageCheck(entry[3], entry[4], problem)

    def put(self, path: Path, size: int, mtime_ns: int, level: int, check: ImageCheck) -> None:
        problem = None if check.problem is None else check.problem.removeprefix(f"{path}: ")
        self.entries[path.name] = [size, mtime_ns, level, check.width, check.height, problem]
        self.changed = True

    def save(self) -> None:
        from spyolo.utils.io import atomic_write_text

        record = {"format": _FORMAT, "version": _VERSION, "folder": self.key, "files": self.entries}
        try:
            atomic_write_text(self.path, json.dumps(record, separators=(",", ":")))
        except OSError as exc:
            where = cache_dir()
            if where not in _warned_unwritable:
                _warned_unwritable.add(where)
                log.warning("cannot write the image-check cache in %s (%s); the next run checks the images "
                            "again (set %s to a writable folder)", where, exc.strerror or exc, CACHE_ENV)


def _check(path: Path, decode: bool) -> ImageCheck:
    try:
        if decode:
            height, width = read_image_file(path).shape[:2]
        else:
            width, height = check_image_file(path)
    except ImageReadError as exc:
        return ImageCheck(0, 0, str(exc))
    return ImageCheck(int(width), int(height))


def check_images(paths: Sequence[Path], decode: bool = False, progress: bool = True) -> list[ImageCheck]:
    """Check every image of ``paths`` (see the module docstring); one result per path, in order.

    Args:
        paths: the image files (repeats are checked once).
        decode: decode every image whole (slower; also cached).
        progress: show a progress bar (on a terminal) when 200 or more images need checking.
    """
    level = _DECODED if decode else _HEADER
    results: list[ImageCheck | None] = [None] * len(paths)
    caches: dict[str, _FolderCache] = {}
    todo: list[tuple[int, Path, _FolderCache, int, int]] = []
    for i, raw in enumerate(paths):
        text = os.fspath(raw)  # strings, not Path objects: a cached start is bound by this loop
        folder, name = os.path.split(text)
        cache = caches.get(folder)
        if cache is None:
            cache = caches[folder] = _FolderCache(Path(folder))
        try:
            st = os.stat(text)
        except OSError:
            results[i] = _check(Path(text), decode)  # names what is wrong (missing, unreadable)
            continue
        if not stat.S_ISREG(st.st_mode):
            results[i] = ImageCheck(0, 0, f"{text}: not a file")
            continue
        hit = cache.get(name, st.st_size, st.st_mtime_ns, level)
        if hit is None:
            todo.append((i, Path(text), cache, st.st_size, st.st_mtime_ns))
        else:
            results[i] = hit
    started = time.perf_counter()
    quiet = not progress or len(todo) < _PROGRESS_FROM
    bar = tqdm(total=len(todo), desc="checking images", unit="img", leave=False, dynamic_ncols=True,
               disable=True if quiet else None)  # None: only on a terminal
    for i, path, cache, size, mtime_ns in todo:
        results[i] = check = _check(path, decode)
        cache.put(path, size, mtime_ns, level, check)
        bar.update(1)
    bar.close()
    for cache in caches.values():
        if cache.changed:
            cache.save()
    if todo:
        log.debug("checked %d of %d images in %.2f s (%s; the rest from the cache in %s)", len(todo), len(paths),
                  time.perf_counter() - started, "decoded" if decode else "headers and end markers", cache_dir())
    return [r if r is not None else ImageCheck(0, 0, "not checked") for r in results]
