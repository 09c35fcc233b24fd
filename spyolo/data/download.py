"""Downloading PASCAL VOC: VOC2007 trainval and test, VOC2012 trainval into ``ROOT/VOCdevkit``.

    spyolo download voc --root data/voc        # then data.root=data/voc/VOCdevkit (configs/spyv4_voc.yaml)

The archives, their addresses and md5 sums are torchvision's (``torchvision.datasets.voc``'s
table); the md5 check is torchvision's too (``torchvision.datasets.utils.check_integrity``).
spyolo does the transfer itself so that it can resume: an interrupted download (a cut connection,
Ctrl-C) keeps what it received in ``ROOT/.spyolo-download/NAME.part``, and the next run asks the
server for the rest (an HTTP range request; a server that ignores it sends the whole file again).
An archive is kept under its own name only once its md5 is right; a wrong md5 removes the part
and stops with one line.

Nothing half-extracted looks complete: a year's archives are extracted into
``ROOT/.spyolo-download/staging-YEAR/`` (members checked by tarfile's ``data`` filter: no paths
outside it, no links out), and the finished ``VOCdevkit/VOC<YEAR>`` folder is then moved into place
in one rename. ``ROOT/spyolo-download.json`` records which years are installed (a year whose move
was interrupted is finished by the next run). The archives and the work folder are removed at the
end (``keep_archives`` keeps the archives).

``ROOT`` must be new, empty, or hold only what an earlier run put there (``VOCdevkit``, the record
and the work folder): anything else is refused, and nothing in it is touched.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from spyolo.errors import DatasetError
from spyolo.utils.io import atomic_write_text

__all__ = ["VOC_YEARS", "Archive", "download_voc", "voc_archives"]

log = logging.getLogger(__name__)

VOC_YEARS = ("2007", "2012")
"""The years ``spyolo download voc`` installs: VOC2007 (trainval and test) and VOC2012 (trainval)."""

_TORCHVISION_KEYS = {"2007": ("2007", "2007-test"), "2012": ("2012",)}
WORK = ".spyolo-download"
RECORD = "spyolo-download.json"
_CHUNK = 1 << 20
_TIMEOUT_S = 60


@dataclass(frozen=True)
class Archive:
    """One archive: where it is, its file name and md5, and the ``VOCdevkit/VOC<year>`` it fills."""

    url: str
    filename: str
    md5: str
    year: str


def voc_archives(years: Sequence[str] = VOC_YEARS, mirror: str | None = None) -> list[Archive]:
    """The archives of ``years`` from torchvision's VOC table (``mirror``: another base address
    holding the same files, e.g. a copy of ``http://host.robots.ox.ac.uk/pascal/VOC/``'s)."""
    from torchvision.datasets.voc import DATASET_YEAR_DICT

    archives = []
    for year in years:
        if year not in _TORCHVISION_KEYS:
            raise DatasetError(f"VOC year {year!r}: spyolo downloads {', '.join(VOC_YEARS)}")
        for key in _TORCHVISION_KEYS[year]:
            entry = DATASET_YEAR_DICT[key]
            url = entry["url"] if mirror is None else f"{mirror.rstrip('/')}/{entry['filename']}"
            archives.append(Archive(url, entry["filename"], entry["md5"], year))
    return archives


def _read_record(root: Path) -> dict:
    path = root / RECORD
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read spyolo's download record ({exc}); remove it only if "
                           f"{root / 'VOCdevkit'} is not spyolo's") from None
    if not isinstance(record, dict) or not isinstance(record.get("years"), dict):
        raise DatasetError(f"{path}: not spyolo's download record")
    return record


def _write_record(root: Path, record: dict) -> None:
    atomic_write_text(root / RECORD, json.dumps(record, indent=2, sort_keys=True) + "\n")


def _check_root(root: Path, record: dict) -> None:
    """Refuse a root that holds anything but what this command puts there."""
    if not root.is_dir():
        return
    names = sorted(os.listdir(root))
    other = [n for n in names if n not in ("VOCdevkit", RECORD, WORK)]
    if other:
        shown = ", ".join(other[:5]) + (f" and {len(other) - 5} more" if len(other) > 5 else "")
        raise DatasetError(f"{root}: holds {shown}; spyolo download puts VOC into a new or empty folder (or one "
                           f"it filled before): choose another --root (nothing was changed)")
    devkit = root / "VOCdevkit"
    if devkit.exists() and not record:
        raise DatasetError(f"{devkit}: exists and was not written by spyolo download; use it as it is "
                           f"(data.root={devkit}) or choose another --root (nothing was changed)")
    if devkit.is_dir():
        known = {f"VOC{year}" for year in record.get("years", {})}
        foreign = sorted(n for n in os.listdir(devkit) if n not in known)
        if foreign:
            raise DatasetError(f"{devkit}: holds {', '.join(foreign[:5])}, which spyolo download did not put there; "
                               f"choose another --root (nothing was changed)")


def _fetch(archive: Archive, part: Path, progress: bool) -> None:
    """Download ``archive`` into ``part``, continuing what is there (see the module docstring)."""
    have = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "spyolo"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(archive.url, headers=headers), timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the part is whole (its md5 decides)
            return
        raise DatasetError(f"{archive.url}: the server answered HTTP {exc.code} ({exc.reason})") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DatasetError(f"{archive.url}: cannot download ({reason}); check the connection, or pass --mirror "
                           f"with another address of the same files") from None
    with response:
        if have and response.status != 206:
            have = 0  # the server sends the whole file: start again
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        part.parent.mkdir(parents=True, exist_ok=True)
        with open(part, "ab" if have else "wb") as out, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=archive.filename,
                disable=not progress, dynamic_ncols=True) as bar:
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
            except (http.client.IncompleteRead, OSError):
                pass  # the size check below reports it
    got = part.stat().st_size
    if total is not None and got < total:
        raise DatasetError(f"{archive.url}: the download was cut after {got} of {total} bytes; run the command "
                           f"again to resume it ({part} keeps what arrived)")


def _verified(archive: Archive, work: Path, progress: bool) -> Path:
    """The archive in ``work``, downloaded (or continued) and md5-checked."""
    from torchvision.datasets.utils import calculate_md5, check_integrity

    done = work / archive.filename
    if done.is_file():
        return done  # renamed only after its md5 was right
    part = work / f"{archive.filename}.part"
    _fetch(archive, part, progress)
    if not check_integrity(part, archive.md5):
        found = calculate_md5(part)
        part.unlink()
        raise DatasetError(f"{archive.url}: md5 {found}, expected {archive.md5} (a damaged download or another "
                           f"file at that address); removed it, nothing was extracted; run the command again to "
                           f"download it anew")
    os.replace(part, done)
    return done


def _extract(archive_file: Path, staging: Path, progress: bool) -> None:
    if not hasattr(tarfile, "data_filter"):  # pragma: no cover - Python before 3.10.12 / 3.11.4
        raise DatasetError(f"{archive_file}: extracting safely needs tarfile's extraction filters (Python 3.10.12, "
                           f"3.11.4 or later)")
    try:
        with tarfile.open(archive_file) as tar:
            members = tar.getmembers()
            for member in tqdm(members, desc=f"extracting {archive_file.name}", unit="file", disable=not progress,
                               dynamic_ncols=True, leave=False):
                tar.extract(member, staging, filter="data")
    except (tarfile.TarError, EOFError) as exc:
        raise DatasetError(f"{archive_file}: cannot extract ({exc}); remove it and run the command again") from None


def download_voc(root: str | Path, archives: Sequence[Archive] | None = None, progress: bool = True,
                 keep_archives: bool = False) -> Path:
    """Put the VOC years of ``archives`` (default :func:`voc_archives`) under ``root/VOCdevkit``; return it.

    Years already installed by an earlier run are left as they are (nothing is downloaded).

    Raises:
        DatasetError: one line: a root holding other things, a failed or cut download (run again to
            resume), a wrong md5, an archive that cannot be extracted or lacks its year's folder.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DatasetError(f"{root}: not a folder; --root names the folder that gets VOCdevkit/")
    archives = list(voc_archives() if archives is None else archives)
    record = _read_record(root)
    _check_root(root, record)
    devkit, work = root / "VOCdevkit", root / WORK
    years = sorted({a.year for a in archives})
    for year in years:
        target = devkit / f"VOC{year}"
        state = record.get("years", {}).get(year)
        if state == "installing" and target.is_dir():  # an earlier run moved it in, then stopped
            record["years"][year] = "installed"
            _write_record(root, record)
        if record.get("years", {}).get(year) == "installed" and target.is_dir():
            log.info("%s: already downloaded", target)
            continue
        files = [_verified(a, work, progress) for a in archives if a.year == year]
        staging = work / f"staging-{year}"
        if staging.exists():
            shutil.rmtree(staging)  # an interrupted extraction of this command's own
        for file in files:
            _extract(file, staging, progress)
        extracted = staging / "VOCdevkit" / f"VOC{year}"
        if not extracted.is_dir():
            raise DatasetError(f"{', '.join(f.name for f in files)}: no VOCdevkit/VOC{year} inside; not the VOC "
                               f"archive(s) of {year}")
        record = {"format": "spyolo download", "dataset": "voc", **record,
                  "years": {**record.get("years", {}), year: "installing"}}
        _write_record(root, record)
        devkit.mkdir(parents=True, exist_ok=True)
        os.replace(extracted, target)
        record["years"][year] = "installed"
        _write_record(root, record)
        shutil.rmtree(staging)
        if not keep_archives:
            for file in files:
                file.unlink()
        log.info("%s: installed (%s)", target, ", ".join(f.name for f in files))
    if work.is_dir() and not keep_archives:
        shutil.rmtree(work)
    return devkit
