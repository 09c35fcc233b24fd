"""The start-up check of every image (header and end marker, no decode), its cache, and errors from
loader workers: bad images stop a run before its first batch with one line."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

import spyolo.data.imagecheck as imagecheck
from spyolo.data.dataset import DetectionDataset
from spyolo.data.imagecheck import cache_dir, check_images
from spyolo.data.images import check_image_file, read_image_file
from spyolo.data.loader import build_dataloader
from spyolo.data.transforms import build_eval_transform
from spyolo.errors import DatasetError, ImageReadError


def _jpeg(path: Path, w: int = 40, h: int = 30) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8))
    return path


def _cut(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("SPYOLO_CACHE_DIR", str(folder))
    return folder


# ------------------------------------------------------------------------------ one file


def test_the_header_check_gives_the_size_and_finds_truncation(tmp_path: Path) -> None:
    jpg = _jpeg(tmp_path / "a.jpg", 40, 30)
    assert check_image_file(jpg) == (40, 30)
    padded = tmp_path / "padded.jpg"
    padded.write_bytes(jpg.read_bytes() + b"\x00" * 5000 + b"\r\n")  # padding after the marker is allowed
    assert check_image_file(padded) == (40, 30)
    png = tmp_path / "b.png"
    cv2.imwrite(str(png), np.zeros((7, 9, 3), np.uint8))
    assert check_image_file(png) == (9, 7)
    for path, needle in [(_cut(jpg), "truncated JPEG (the end-of-image marker is missing)"),
                         (_cut(png, 0.8), "truncated PNG (the IEND chunk is missing)")]:
        with pytest.raises(ImageReadError, match=f"{path.name}: {needle.replace('(', '.').replace(')', '.')}"):
            check_image_file(path)
        with pytest.raises(ImageReadError, match="truncated"):
            read_image_file(path)  # the reader applies the same rule
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty file"):
        check_image_file(empty)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image at all")
    with pytest.raises(ImageReadError, match="cannot decode image"):
        check_image_file(text)
    with pytest.raises(ImageReadError, match="image file not found"):
        check_image_file(tmp_path / "missing.jpg")
    with pytest.raises(ImageReadError, match="not a file"):
        check_image_file(tmp_path)


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    with pytest.raises(ImageReadError, match="30000x30000 pixels, more than"):
        check_image_file(bomb)


# ------------------------------------------------------------------------------ the cache


def test_results_are_cached_by_path_size_and_time(tmp_path: Path, own_cache: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    images = [_jpeg(tmp_path / "set" / f"{i}.jpg", 40 + i, 30) for i in range(3)]
    bad = _cut(_jpeg(tmp_path / "set" / "bad.jpg"))
    first = check_images([*images, bad])
    assert [(c.width, c.height) for c in first[:3]] == [(40, 30), (41, 30), (42, 30)]
    assert first[3].problem == f"{bad}: truncated JPEG (the end-of-image marker is missing)"
    files = list((own_cache / "image-checks").iterdir())
    assert len(files) == 1 and not list((tmp_path / "set").glob("*.json"))  # never inside the dataset
    record = json.loads(files[0].read_text())
    assert record["folder"] == str((tmp_path / "set").resolve()) and len(record["files"]) == 4

    def fail(path):
        raise AssertionError(f"{path} checked again")

    monkeypatch.setattr(imagecheck, "check_image_file", fail)
    assert check_images([*images, bad]) == first  # all from the cache, the problem too
    assert check_images([Path(os.path.relpath(images[0]))])[0].width == 40  # another spelling of the path
    _jpeg(images[1], 50, 20)  # changed: another size on disk
    os.utime(images[2], ns=(1, 1))  # touched: another time
    calls = []
    monkeypatch.setattr(imagecheck, "check_image_file", lambda p: calls.append(p.name) or check_image_file(p))
    again = check_images([*images, bad])
    assert sorted(calls) == ["1.jpg", "2.jpg"] and (again[1].width, again[1].height) == (50, 20)


def test_a_decoding_check_is_cached_apart(tmp_path: Path, own_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = [_jpeg(tmp_path / f"{i}.jpg") for i in range(2)]
    check_images(images)
    decoded = []
    monkeypatch.setattr(imagecheck, "read_image_file", lambda p: decoded.append(p) or read_image_file(p))
    check_images(images, decode=True)
    assert len(decoded) == 2  # a header check does not stand for a decode ...
    monkeypatch.setattr(imagecheck, "check_image_file", lambda p: pytest.fail("decoded covers the header check"))
    check_images(images, decode=True)
    check_images(images)
    assert len(decoded) == 2  # ... a decode stands for both


def test_a_damaged_or_hostile_cache_is_ignored_and_replaced(tmp_path: Path, own_cache: Path) -> None:
    image = _jpeg(tmp_path / "set" / "a.jpg")
    check_images([image])
    cache_file = next((own_cache / "image-checks").iterdir())
    for junk in ("{not json", "[1, 2]", json.dumps({"format": "spyolo image checks", "version": 1,
                                                     "folder": str((tmp_path / "set").resolve()),
                                                     "files": {"a.jpg": ["big", None, 9, "x", 1, 2]}}),
                 json.dumps({"format": "spyolo image checks", "version": 1, "folder": "/elsewhere",
                             "files": {"a.jpg": [0, 0, 9, 1, 1, None]}})):
        cache_file.write_text(junk)
        assert check_images([image])[0].width == 40
        assert json.loads(cache_file.read_text())["files"]["a.jpg"][3] == 40  # rewritten whole


def test_an_unwritable_cache_costs_one_warning_not_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("SPYOLO_CACHE_DIR", str(blocker / "cache"))  # under a file: cannot be created
    monkeypatch.setattr(imagecheck, "_warned_unwritable", set())
    image = _jpeg(tmp_path / "a.jpg")
    with caplog.at_level(logging.WARNING, logger="spyolo"):
        assert check_images([image])[0].width == 40
        assert check_images([image])[0].width == 40
    warnings = [r.getMessage() for r in caplog.records if "image-check cache" in r.getMessage()]
    assert len(warnings) == 1 and "SPYOLO_CACHE_DIR" in warnings[0]


def test_the_cache_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPYOLO_CACHE_DIR", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x"
    monkeypatch.delenv("SPYOLO_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "spyolo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "spyolo"


# ------------------------------------------------------------------------------ datasets and runs


def _voc_copy(tiny_voc_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(tiny_voc_root, root)
    return root


def test_a_bad_image_stops_the_dataset_at_start_up(tiny_voc_root: Path, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    root = _voc_copy(tiny_voc_root, tmp_path)
    year = root / "SYNTH"
    ids = (year / "ImageSets" / "Main" / "train.txt").read_text().split()
    bad = [_cut(year / "JPEGImages" / f"{ids[i]}.jpg") for i in (1, 4)]
    names = (year / "classes.txt").read_text().split()
    with pytest.raises(DatasetError) as info:
        DetectionDataset([(year, "train")], names)
    assert str(info.value) == (f"{bad[0]}: truncated JPEG (the end-of-image marker is missing) (2 of {len(ids)} "
                               f"samples are bad; data.skip_bad=true leaves them out and lists them)")
    with caplog.at_level(logging.WARNING, logger="spyolo"):
        ds = DetectionDataset([(year, "train")], names, skip_bad=True)
    assert len(ds) == len(ids) - 2 and [p for p, _ in ds.skipped] == [str(b) for b in bad]
    assert all(str(b) in caplog.text for b in bad)


def test_a_worker_error_is_its_own_one_line(tiny_voc_root: Path, tmp_path: Path) -> None:
    """An image that breaks after the start-up check: the error from a loader worker (data.workers=2)
    is the spyolo error with its own message, not PyTorch's text with the worker's traceback. (The
    reported truncated photo stopping ``spyolo train`` at start-up, with and without workers:
    test_faults.py::test_truncated_image_is_an_error_or_a_listed_skip.)"""
    root = _voc_copy(tiny_voc_root, tmp_path)
    year = root / "SYNTH"
    names = (year / "classes.txt").read_text().split()
    ds = DetectionDataset([(year, "test")], names, transform=build_eval_transform(64))
    _cut(ds.image_paths[3])
    for workers in (0, 2):
        loader = build_dataloader(ds, 2, shuffle=False, workers=workers, persistent_workers=False)
        with pytest.raises(DatasetError) as info:
            for _ in loader:
                pass
        assert str(info.value) == f"{ds.image_paths[3]}: truncated JPEG (the end-of-image marker is missing)"
        assert info.value.__cause__ is None and "Traceback" not in str(info.value)
