"""Read detection results and ground truth stored as one text file per image.

Format (whitespace separated, one object per line, blank lines allowed, empty
files allowed; only files ending in ``.txt`` are read, the image id is the file
name without ``.txt``):

* ground truth ``<gt_dir>/<image_id>.txt``: ``class x1 y1 x2 y2`` or
  ``class x1 y1 x2 y2 difficult`` (the literal word ``difficult``);
* detections ``<det_dir>/<image_id>.txt``: ``class score x1 y1 x2 y2``.

Coordinates are VOC pixels (1-based, inclusive). Class names cannot contain
whitespace in this format (VOC uses ``pottedplant``, ``diningtable``, ...).

Without an explicit class list the classes are the sorted set of ground-truth
class names; detections of any other class are dropped with a warning (they
cannot change any AP, since only classes with ground truth enter the mAP).
With an explicit class list, an unknown class name is an error.

Detection files for images that have no ground-truth file are kept: as in the
devkit, those detections are false positives; a warning gives their number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spyolo.errors import DatasetError, TextFormatError
from spyolo.eval.voc import VOCEvaluator
from spyolo.utils.text import finite_number

__all__ = [
    "TextFormatError",
    "TextResults",
    "evaluator_from_text",
    "load_text_results",
    "read_class_file",
]


@dataclass
class _GTRows:
    names: list[str] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)
    difficult: list[bool] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)


@dataclass
class _DetRows:
    names: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)


@dataclass
class TextResults:
    """Ground truth and detections read from text directories.

    Attributes:
        class_names: class list (label ``i`` is ``class_names[i]``).
        gt: ``{image_id: {"boxes": (N,4), "labels": (N,), "difficult": (N,)}}``.
        dets: ``{image_id: {"boxes": (M,4), "scores": (M,), "labels": (M,)}}``.
        warnings: human-readable warnings produced while reading.
    """

    class_names: list[str]
    gt: dict[str, dict[str, np.ndarray]]
    dets: dict[str, dict[str, np.ndarray]]
    warnings: list[str]


def _list_txt(directory: Path, what: str) -> list[Path]:
    if not directory.exists():
        raise FileNotFoundError(f"{what} directory not found: {directory}")
    if not directory.is_dir():
        raise NotADirectoryError(f"{what} path is not a directory: {directory}")
    files = sorted(p for p in directory.iterdir() if p.suffix == ".txt" and p.is_file())
    return files


def _parse_float(token: str, path: Path, lineno: int, what: str) -> float:
    return finite_number(token, f"{path}:{lineno}: {what}", TextFormatError)


def _parse_box(tokens: list[str], path: Path, lineno: int) -> list[float]:
    box = [_parse_float(t, path, lineno, n) for t, n in zip(tokens, ("x1", "y1", "x2", "y2"))]
    if box[2] < box[0] or box[3] < box[1]:
        raise TextFormatError(f"{path}:{lineno}: box {tokens} has x2 < x1 or y2 < y1")
    return box


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TextFormatError(f"{path}: not UTF-8 text ({exc})") from None
    return [(i, line.split()) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _read_gt_file(path: Path) -> _GTRows:
    rows = _GTRows()
    for lineno, tok in _lines(path):
        if len(tok) == 6:
            if tok[5] != "difficult":
                raise TextFormatError(
                    f"{path}:{lineno}: 6th field must be the word 'difficult'; got {tok[5]!r}"
                )
            diff = True
        elif len(tok) == 5:
            diff = False
        else:
            raise TextFormatError(
                f"{path}:{lineno}: expected 'class x1 y1 x2 y2 [difficult]' (5 or 6 fields); "
                f"got {len(tok)} fields"
            )
        rows.names.append(tok[0])
        rows.boxes.append(_parse_box(tok[1:5], path, lineno))
        rows.difficult.append(diff)
        rows.lines.append(lineno)
    return rows


def _read_det_file(path: Path) -> _DetRows:
    rows = _DetRows()
    for lineno, tok in _lines(path):
        if len(tok) != 6:
            raise TextFormatError(
                f"{path}:{lineno}: expected 'class score x1 y1 x2 y2' (6 fields); "
                f"got {len(tok)} fields"
            )
        rows.names.append(tok[0])
        rows.scores.append(_parse_float(tok[1], path, lineno, "score"))
        rows.boxes.append(_parse_box(tok[2:6], path, lineno))
        rows.lines.append(lineno)
    return rows


def read_class_file(path: str | Path) -> list[str]:
    """Read a class list: one name per line, blank lines ignored, no duplicates."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"class list file not found: {p}")
    names: list[str] = []
    for lineno, tok in _lines(p):
        if len(tok) != 1:
            raise TextFormatError(f"{p}:{lineno}: a class name must be one word; got {tok}")
        if tok[0] in names:
            raise TextFormatError(f"{p}:{lineno}: duplicate class name {tok[0]!r}")
        names.append(tok[0])
    if not names:
        raise TextFormatError(f"{p}: the class list is empty")
    return names


def load_text_results(
    gt_dir: str | Path,
    det_dir: str | Path,
    class_names: list[str] | None = None,
) -> TextResults:
    """Read a ground-truth directory and a detection directory.

    Args:
        gt_dir: folder of ``<image_id>.txt`` ground-truth files.
        det_dir: folder of ``<image_id>.txt`` detection files.
        class_names: class list; default: sorted set of ground-truth names.

    Raises:
        FileNotFoundError / NotADirectoryError: a folder is missing.
        ValueError: malformed line (message names file and line), unknown class
            with an explicit class list, no ground-truth file at all.
    """
    gdir, ddir = Path(gt_dir), Path(det_dir)
    gt_files = _list_txt(gdir, "ground-truth")
    det_files = _list_txt(ddir, "detection")
    if not gt_files:
        raise DatasetError(f"no .txt ground-truth files in {gdir}")
    warnings: list[str] = []
    gt_rows = {p.stem: (p, _read_gt_file(p)) for p in gt_files}
    det_rows = {p.stem: (p, _read_det_file(p)) for p in det_files}

    explicit = class_names is not None
    if class_names is None:
        names = sorted({n for _, rows in gt_rows.values() for n in rows.names})
        if not names:
            raise DatasetError(f"the ground-truth files in {gdir} contain no object at all")
    else:
        names = list(class_names)
    index = {n: i for i, n in enumerate(names)}

    gt: dict[str, dict[str, np.ndarray]] = {}
    for image_id, (path, rows) in gt_rows.items():
        for k, n in enumerate(rows.names):
            if n not in index:
                raise TextFormatError(
                    f"{path}:{rows.lines[k]}: class {n!r} is not in the class list"
                )
        gt[image_id] = {
            "boxes": np.asarray(rows.boxes, dtype=np.float64).reshape(-1, 4),
            "labels": np.asarray([index[n] for n in rows.names], dtype=np.int64),
            "difficult": np.asarray(rows.difficult, dtype=bool),
        }

    dets: dict[str, dict[str, np.ndarray]] = {}
    dropped = 0
    dropped_names: set[str] = set()
    no_gt_images = 0
    no_gt_dets = 0
    for image_id, (path, rows) in det_rows.items():
        keep = []
        for k, n in enumerate(rows.names):
            if n in index:
                keep.append(k)
            elif explicit:
                raise TextFormatError(
                    f"{path}:{rows.lines[k]}: class {n!r} is not in the class list"
                )
            else:
                dropped += 1
                dropped_names.add(n)
        if image_id not in gt and keep:
            no_gt_images += 1
            no_gt_dets += len(keep)
        dets[image_id] = {
            "boxes": np.asarray([rows.boxes[k] for k in keep], dtype=np.float64).reshape(-1, 4),
            "scores": np.asarray([rows.scores[k] for k in keep], dtype=np.float64),
            "labels": np.asarray([index[rows.names[k]] for k in keep], dtype=np.int64),
        }
    if dropped:
        warnings.append(
            f"{dropped} detections of classes without ground truth "
            f"({', '.join(sorted(dropped_names))}) were dropped; they cannot change the mAP"
        )
    if no_gt_images:
        warnings.append(
            f"{no_gt_dets} detections in {no_gt_images} files of {ddir} have no ground-truth "
            f"file in {gdir}; they count as false positives"
        )
    return TextResults(class_names=names, gt=gt, dets=dets, warnings=warnings)


def evaluator_from_text(
    results: TextResults, iou_threshold: float = 0.5, metric: str = "voc07"
) -> VOCEvaluator:
    """Build a :class:`VOCEvaluator` filled with the data of ``results``.

    Images are added in sorted id order, so detections with tied scores are
    ranked by image id, then by line order in the file.
    """
    ev = VOCEvaluator(results.class_names, iou_threshold=iou_threshold, metric=metric)
    for image_id in sorted(results.gt):
        g = results.gt[image_id]
        ev.add_ground_truth(image_id, g["boxes"], g["labels"], g["difficult"])
    for image_id in sorted(results.dets):
        d = results.dets[image_id]
        ev.add_detections(image_id, d["boxes"], d["scores"], d["labels"])
    return ev
