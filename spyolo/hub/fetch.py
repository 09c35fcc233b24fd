"""Downloading the files of named weights into spyolo's cache, verified.

The cache is ``$SPYOLO_CACHE`` if set, else ``$XDG_CACHE_HOME/spyolo``, else ``~/.cache/spyolo``
(:func:`cache_dir`). A file of a named entry lives at ``downloads/<name>/<filename>`` in it
(:func:`download_path`); the spyolo checkpoint converted from it at ``checkpoints/<name>.pt``.

:func:`ensure_file` returns the verified file, downloading it first when it is absent. A download
goes through :func:`torch.hub.download_url_to_file` (part of torch, which spyolo requires; it follows
redirects, honours the usual proxy variables through ``urllib``, shows a ``tqdm`` progress bar on
standard error and writes into a ``.partial`` file that it removes when the transfer fails): its
result lands in a hidden temporary file beside the destination (``.<filename>.<random>.download``),
is checked against the entry's size and checksum (git blob SHA-1, MD5 or SHA-256: the checksums the
files' publishers state; torch.hub itself checks SHA-256 prefixes only), flushed to disk and only then
renamed to its place. A failed, cut or refused download, or one that does not verify, leaves nothing
in the cache and raises :class:`~spyolo.errors.DownloadError` with one line naming the URL, the
expected checksum and where to put the file by hand. A file already at its place (one the user
put there, say) is verified before every use and never deleted: one that does not verify is an
error that says so.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
from pathlib import Path

from spyolo.errors import DownloadError
from spyolo.hub.registry import NamedWeights, RemoteFile
from spyolo.utils.io import file_mode

__all__ = ["CACHE_ENV", "cache_dir", "checkpoint_path", "download_path", "ensure_file", "file_checksum",
           "verify_file"]

log = logging.getLogger(__name__)

CACHE_ENV = "SPYOLO_CACHE"
"""The environment variable that moves the cache."""

_CHUNK = 1 << 20


def cache_dir() -> Path:
    """``$SPYOLO_CACHE``, else ``$XDG_CACHE_HOME/spyolo``, else ``~/.cache/spyolo``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "spyolo"


def download_path(entry: NamedWeights, remote: RemoteFile) -> Path:
    """Where a downloaded file of ``entry`` lives in the cache."""
    return cache_dir() / "downloads" / entry.name / remote.filename


def checkpoint_path(entry: NamedWeights) -> Path:
    """Where the spyolo checkpoint converted from ``entry``'s files lives in the cache."""
    return cache_dir() / "checkpoints" / f"{entry.name}.pt"


def file_checksum(path: str | Path, kind: str) -> str:
    """The ``kind`` digest of a file (``git-sha1``: SHA-1 over ``b"blob <size>\\0"`` and the bytes)."""
    path = Path(path)
    if kind == "git-sha1":
        digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    elif kind == "md5":
        digest = hashlib.md5(usedforsecurity=False)
    elif kind == "sha256":
        digest = hashlib.sha256()
    else:
        raise ValueError(f"unknown checksum kind {kind!r}")
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: str | Path, remote: RemoteFile) -> str | None:
    """``None`` when ``path`` is ``remote``'s file (size and checksum), else what differs."""
    size = Path(path).stat().st_size
    if remote.size is not None and size != remote.size:
        return f"it holds {size:,} bytes, the file has {remote.size:,}"
    got = file_checksum(path, remote.checksum_kind)
    if got != remote.digest.lower():
        return f"its {remote.describe_checksum().rsplit(' ', 1)[0]} is {got}, expected {remote.digest}"
    return None


def _by_hand(entry: NamedWeights, remote: RemoteFile) -> str:
    return (f"download {remote.url} by hand ({remote.describe_checksum()}) and save it as "
            f"{download_path(entry, remote)}")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"no connection: {exc.reason}"
    if isinstance(exc, http.client.IncompleteRead):
        return f"the connection closed after {len(exc.partial):,} bytes of the last block, before the end of the file"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _download(entry: NamedWeights, remote: RemoteFile, dest: Path, progress: bool) -> None:
    """Download ``remote`` to ``dest`` through a verified temporary file (see the module doc)."""
    from torch.hub import download_url_to_file

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".download", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        log.info("%s: downloading %s", entry.name, remote.url)
        try:
            download_url_to_file(remote.url, str(tmp), progress=progress)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise DownloadError(f"{entry.name}: cannot download {remote.url} ({_reason(exc)}); "
                                f"{_by_hand(entry, remote)}") from None
        problem = verify_file(tmp, remote)
        if problem is not None:
            raise DownloadError(f"{entry.name}: the download of {remote.url} does not verify ({problem}); nothing "
                                f"was kept; {_by_hand(entry, remote)}")
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_file(entry: NamedWeights, remote: RemoteFile, progress: bool = True) -> Path:
    """The verified cached copy of ``remote`` (downloaded first when absent).

    Raises:
        DownloadError: the download failed or does not verify (nothing is kept), or the file in
            the cache does not verify (it is left as it is, for the user to replace).
    """
    dest = download_path(entry, remote)
    if dest.is_file():
        problem = verify_file(dest, remote)
        if problem is not None:
            raise DownloadError(f"{dest}: not {remote.url} ({problem}); spyolo does not use it and does not "
                                f"delete it: remove it to download the file again, or replace it by hand "
                                f"({remote.describe_checksum()})")
        return dest
    _download(entry, remote, dest, progress)
    return dest
