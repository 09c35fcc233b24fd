"""Downloading the files of named weights into spyolo's cache, verified.

The cache is ``$SPYOLO_CACHE`` if set, else ``$XDG_CACHE_HOME/spyolo``, else ``~/.cache/spyolo``
(:func:`cache_dir`). A file of a named entry lives at ``downloads/<name>/<filename>`` in it
(:func:`download_path`); the spyolo checkpoint converted from it at ``checkpoints/<name>.pt``.

:func:`ensure_file` returns the verified file, downloading it first when it is absent. A download
goes through :mod:`urllib.request`, Python's own HTTP client (it follows redirects, as GitHub's
``/raw/`` URLs need, honours the usual proxy variables and checks HTTPS certificates), with a
timeout of :data:`TIMEOUT_S` per read and a ``tqdm`` progress bar on standard error. It streams into
a hidden temporary file beside the destination (``.<filename>.<random>.download``), which must hold
as many bytes as the server announced and then match the entry's size and checksum (git blob
SHA-1, MD5 or SHA-256: the checksums the files' publishers state); only then is it flushed to disk
and renamed to its place. (``torch.hub.download_url_to_file`` would do the transfer too, but it has
no timeout and keeps a transfer that the server cuts short as if it were complete; only the checksum
would catch it.) A failed, cut or refused download, or one that does not verify, leaves nothing in
the cache and raises :class:`~spyolo.errors.DownloadError` with one line naming the URL, the reason,
the expected checksum and where to put the file by hand. A file already at its place (one the user
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

__all__ = ["CACHE_ENV", "TIMEOUT_S", "cache_dir", "checkpoint_path", "download_path", "ensure_file", "file_checksum",
           "verify_file"]

log = logging.getLogger(__name__)

CACHE_ENV = "SPYOLO_CACHE"
"""The environment variable that moves the cache."""

_CHUNK = 1 << 20
TIMEOUT_S = 60.0
"""Seconds a download waits for the server to answer or to send more (then it stops with an error)."""


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
        return "the connection closed before the end of the file"
    if isinstance(exc, _CutShort):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"no data for {TIMEOUT_S:g} s"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _CutShort(Exception):
    def __init__(self, got: int, total: int) -> None:
        super().__init__(f"the connection closed after {got:,} of {total:,} bytes")


def _stream(url: str, f, label: str, progress: bool) -> None:
    """Write the body of ``url`` into the binary file ``f``; a body shorter than announced is an error."""
    import urllib.request

    from tqdm import tqdm

    from spyolo import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"spyolo/{__version__}"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 - the registry's https URLs
        length = response.headers.get("Content-Length", "")
        total = int(length) if length.strip().isdigit() else None
        got = 0
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label, disable=not progress,
                  leave=False) as bar:
            while chunk := response.read(_CHUNK):
                f.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
    if total is not None and got != total:
        raise _CutShort(got, total)


def _download(entry: NamedWeights, remote: RemoteFile, dest: Path, progress: bool) -> None:
    """Download ``remote`` to ``dest`` through a verified temporary file (see the module doc)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".download", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        log.info("%s: downloading %s", entry.name, remote.url)
        with os.fdopen(fd, "wb") as f:
            try:
                _stream(remote.url, f, remote.filename, progress)
            except (OSError, http.client.HTTPException, ValueError, _CutShort) as exc:
                raise DownloadError(f"{entry.name}: cannot download {remote.url} ({_reason(exc)}); nothing was "
                                    f"kept; {_by_hand(entry, remote)}") from None
            f.flush()
            os.fsync(f.fileno())
        problem = verify_file(tmp, remote)
        if problem is not None:
            raise DownloadError(f"{entry.name}: the download of {remote.url} does not verify ({problem}); nothing "
                                f"was kept; {_by_hand(entry, remote)}")
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
