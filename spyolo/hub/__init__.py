"""Pretrained detectors by name: ``--weights sfptt-voc``, ``model.init_from=yolov4-tiny-coco``.

    from spyolo.hub import resolve_weights
    path = resolve_weights("sfptt-voc")   # downloaded, verified and converted on first use, then cached

:data:`~spyolo.hub.registry.REGISTRY` lists the names (``spyolo weights`` prints it).
:func:`resolve_weights` turns a name into the spyolo checkpoint made from its files: on first use
the files are downloaded into the cache (:mod:`spyolo.hub.fetch`: verified before they are kept),
converted once (:mod:`spyolo.hub.convert`) and the checkpoint cached at
``<cache>/checkpoints/<name>.pt``; later uses read it from there. A path that names an existing
file always wins over a name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spyolo.errors import CheckpointError, DownloadError
from spyolo.hub.convert import convert_weights
from spyolo.hub.fetch import cache_dir, checkpoint_path, download_path, ensure_file
from spyolo.hub.registry import REGISTRY, NamedWeights, RemoteFile
from spyolo.utils.torchfile import read_torch_file

__all__ = ["REGISTRY", "CacheState", "NamedWeights", "RemoteFile", "cache_dir", "cache_state", "convert_weights",
           "fetch_named", "is_weights_name", "resolve_weights"]

log = logging.getLogger(__name__)


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def is_weights_name(spec: str | Path) -> bool:
    """Whether ``spec`` is a registered name (and no file of that name exists)."""
    return str(spec) in REGISTRY and not Path(spec).exists()


def resolve_weights(spec: str | Path, progress: bool = True) -> Path:
    """The weights file ``spec`` stands for: an existing path as it is, a registered name through
    :func:`fetch_named`; anything else as a path (its reader then reports it missing).

    Raises:
        DownloadError: a name whose files cannot be fetched or verified, or that names no entry and
            no file while looking like a name (no folder, no suffix).
    """
    path = Path(spec)
    if path.exists():
        return path
    if str(spec) in REGISTRY:
        return fetch_named(str(spec), progress=progress)
    text = str(spec)
    if text and "/" not in text and "\\" not in text and not path.suffix:
        raise DownloadError(f"{text}: no such file, and not a named weights file ({', '.join(REGISTRY)}; "
                            f"'spyolo weights' lists them)")
    return path


def _record(entry: NamedWeights) -> dict[str, Any]:
    return {"weights_name": entry.name, "source_checksums": {f.filename: f.checksum for f in entry.files}}


def _is_current(path: Path, entry: NamedWeights) -> bool:
    """Whether the cached checkpoint ``path`` was converted from ``entry``'s files as they are now.

    Raises:
        DownloadError: ``path`` is not a checkpoint spyolo converted for this name (left as it is).
    """
    ckpt = read_torch_file(path, CheckpointError, "checkpoint")
    run = ckpt.get("run") if isinstance(ckpt, dict) else None
    if not isinstance(run, dict) or run.get("weights_name") != entry.name or "model" not in ckpt:
        raise DownloadError(f"{path}: not the checkpoint spyolo converts for {entry.name}; spyolo does not use it "
                            f"and does not replace it: remove it to convert the weights again")
    return run.get("source_checksums") == _record(entry)["source_checksums"]


def fetch_named(name: str, progress: bool = True) -> Path:
    """The spyolo checkpoint of the named entry ``name``: cached, or fetched, verified and converted now.

    Raises:
        DownloadError: an unknown name, a download that fails or does not verify, a cached file that
            does not verify, or a repository checkpoint missing from this installation.
    """
    entry = REGISTRY.get(name)
    if entry is None:
        raise DownloadError(f"{name}: not a named weights file ({', '.join(REGISTRY)})")
    if entry.kind == "local":
        path = _repo_root() / str(entry.local)
        if not path.is_file():
            raise DownloadError(f"{name}: ships with spyolo's repository ({entry.local} of a clone), not with this "
                                f"installation (looked for {path})")
        return path
    out = checkpoint_path(entry)
    if out.is_file() and _is_current(out, entry):
        return out
    files = [ensure_file(entry, remote, progress=progress) for remote in entry.files]
    log.info("%s: converting %s into %s", name, files[0].name, out)
    extra = {"cfg": files[1], "names": files[2]} if entry.kind == "darknet" else {}
    convert_weights(files[0], out, record=_record(entry), **extra)
    return out


@dataclass(frozen=True)
class CacheState:
    """What the cache holds of a named entry: its downloaded files and its converted checkpoint."""

    entry: NamedWeights
    downloaded: tuple[Path, ...]
    checkpoint: Path | None

    def describe(self) -> str:
        """``converted (<path>)``, ``downloaded, not converted``, ``not cached``, ``in the repository``."""
        if self.entry.kind == "local":
            return "in the repository" if self.checkpoint is not None else "not in this installation"
        if self.checkpoint is not None:
            return f"cached: {self.checkpoint}"
        if self.downloaded:
            return f"downloaded ({len(self.downloaded)} of {len(self.entry.files)} files), not converted"
        return "not cached"


def cache_state(entry: NamedWeights) -> CacheState:
    """What the cache holds of ``entry`` now (files are not verified here; they are before use)."""
    if entry.kind == "local":
        path = _repo_root() / str(entry.local)
        return CacheState(entry, (), path if path.is_file() else None)
    files = tuple(p for p in (download_path(entry, f) for f in entry.files) if p.is_file())
    out = checkpoint_path(entry)
    return CacheState(entry, files, out if out.is_file() else None)
