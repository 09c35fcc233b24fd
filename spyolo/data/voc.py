"""PASCAL VOC annotations: year folders, XML files, class lists, box conventions.

:class:`VOCAnnotation` (boxes in VOC's convention) is also what COCO annotations are converted
to (:mod:`spyolo.data.coco`); :class:`spyolo.data.dataset.DetectionDataset` serves both.

Folder layout (one "year folder", e.g. ``VOCdevkit/VOC2007``)::

    <year_dir>/JPEGImages/<id>.jpg
    <year_dir>/Annotations/<id>.xml
    <year_dir>/ImageSets/Main/<split>.txt     one image id per line
    <year_dir>/classes.txt                    optional, one class name per line

Box coordinate conventions
--------------------------
VOC XML boxes ``(x1, y1, x2, y2)`` are 1-based and *inclusive*: the box covers the
pixel columns ``x1 .. x2`` (1-based), so a box with ``x1 == x2`` is one pixel wide,
and a valid box satisfies ``1 <= x1 <= x2 <= width`` (same for y).

Everything after parsing (transforms, training targets, predictions) uses
*continuous 0-based pixel edges*: pixel column ``c`` (0-based) spans ``[c, c + 1)``.
The same box in continuous coordinates is::

    (X1, Y1, X2, Y2) = (x1 - 1, y1 - 1, x2, y2)        voc_to_continuous
    (x1, y1, x2, y2) = (X1 + 1, Y1 + 1, X2, Y2)        continuous_to_voc

so its continuous width ``X2 - X1`` equals the VOC "+1" width ``x2 - x1 + 1``, and a
whole image of width W spans ``[0, W]``. Training targets are these continuous
boxes, converted to ``(cx, cy, w, h)`` and divided by the output image size.

"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from spyolo.data.samples import Sample, SetListing
from spyolo.errors import DatasetError, ImageReadError

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)

PathLike = str | os.PathLike[str]



@dataclass(frozen=True)
class VOCObject:
    """One annotated object.

    Attributes:
        name: class name as written in the XML (stripped).
        label: index of ``name`` in the class list.
        box: ``(x1, y1, x2, y2)`` in VOC pixels (1-based, inclusive), as in the XML.
        difficult: the VOC ``difficult`` flag.
        truncated: the VOC ``truncated`` flag.
    """

    name: str
    label: int
    box: tuple[float, float, float, float]
    difficult: bool
    truncated: bool


@dataclass
class VOCAnnotation:
    """The parsed content of one VOC XML file (all objects, difficult included)."""

    image_id: str
    filename: str
    width: int
    height: int
    depth: int
    objects: list[VOCObject] = field(default_factory=list)

    def boxes(self) -> np.ndarray:
        """VOC boxes ``(x1, y1, x2, y2)`` (1-based inclusive), float32 of shape (N, 4)."""
        if not self.objects:
            return np.zeros((0, 4), dtype=np.float32)
        return np.array([o.box for o in self.objects], dtype=np.float32)

    def labels(self) -> np.ndarray:
        """Class indices, int64 of shape (N,)."""
        return np.array([o.label for o in self.objects], dtype=np.int64)

    def difficult(self) -> np.ndarray:
        """Difficult flags, bool of shape (N,)."""
        return np.array([o.difficult for o in self.objects], dtype=bool)


def voc_to_continuous(boxes: np.ndarray) -> np.ndarray:
    """Convert VOC boxes (1-based inclusive) to continuous 0-based pixel edges.

    ``(x1, y1, x2, y2) -> (x1 - 1, y1 - 1, x2, y2)``; returns a new float32 array of
    shape (N, 4).
    """
    out = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    out[:, :2] -= 1.0
    return out


def continuous_to_voc(boxes: np.ndarray) -> np.ndarray:
    """Inverse of :func:`voc_to_continuous`: ``(X1, Y1, X2, Y2) -> (X1 + 1, Y1 + 1, X2, Y2)``."""
    out = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    out[:, :2] += 1.0
    return out


def clipped_voc_box(x1: float, y1: float, x2: float, y2: float, width: int,
                    height: int) -> tuple[float, float, float, float]:
    """Continuous corners of a box (possibly reaching slightly past the image) as a valid VOC box.

    The corners are clipped to ``[0, width] x [0, height]`` and become VOC's 1-based inclusive
    pixels; a box narrower than a pixel keeps ``xmax = xmin`` (one pixel), same for y. Used for
    the kinds whose boxes are continuous (COCO, YOLO).
    """
    x1, y1 = max(0.0, x1), max(0.0, y1)
    x2, y2 = min(float(width), x2), min(float(height), y2)
    vx1, vy1 = min(x1 + 1.0, float(width)), min(y1 + 1.0, float(height))
    return vx1, vy1, max(x2, vx1), max(y2, vy1)


# --------------------------------------------------------------------------- XML


def _flag(obj: ET.Element, tag: str, path: Path, index: int) -> bool:
    """Read a 0/1 flag tag; a missing or empty tag means False."""
    text = obj.findtext(tag)
    if text is None or not text.strip():
        return False
    try:
        return float(text.strip()) != 0.0
    except ValueError:
        raise DatasetError(f"{path}: object {index} has non-numeric <{tag}> ({text.strip()!r})") from None


def _number(parent: ET.Element, tag: str, path: Path, where: str) -> float:
    """Read a required finite number from ``parent/tag``."""
    text = parent.findtext(tag)
    if text is None or not text.strip():
        raise DatasetError(f"{path}: {where} is missing <{tag}>")
    try:
        value = float(text.strip())
    except ValueError:
        raise DatasetError(f"{path}: {where} has non-numeric <{tag}> ({text.strip()!r})") from None
    if not math.isfinite(value):
        raise DatasetError(f"{path}: {where} has non-finite <{tag}> ({text.strip()!r})")
    return value


def _positive_int(parent: ET.Element, tag: str, path: Path) -> int:
    value = _number(parent, tag, path, "<size>")
    if value <= 0 or value != int(value):
        raise DatasetError(f"{path}: <size><{tag}> must be a positive integer, got {value}")
    return int(value)


def parse_voc_xml(path: PathLike, class_names: Sequence[str]) -> VOCAnnotation:
    """Parse one VOC annotation file.

    Args:
        path: the ``.xml`` file; its stem is the image id.
        class_names: the class list; an object's label is the index of its name.

    Returns:
        The annotation with every object (difficult ones included).

    Raises:
        DatasetError: naming ``path``, for malformed XML, a missing ``<size>`` or
            ``<bndbox>`` field, non-numeric coordinates, an unknown class name,
            ``xmax < xmin`` or ``ymax < ymin``, or a box outside ``1..width`` /
            ``1..height`` (no tolerance).
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise DatasetError(f"{path}: malformed XML ({exc})") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read annotation file ({exc})") from None
    if root.tag != "annotation":
        raise DatasetError(f"{path}: root element is <{root.tag}>, expected <annotation>")

    size = root.find("size")
    if size is None:
        raise DatasetError(f"{path}: missing <size>")
    width = _positive_int(size, "width", path)
    height = _positive_int(size, "height", path)
    depth_text = size.findtext("depth")
    depth = 3
    if depth_text is not None and depth_text.strip():
        try:
            depth = int(float(depth_text.strip()))
        except ValueError:
            raise DatasetError(f"{path}: <size><depth> is non-numeric ({depth_text.strip()!r})") from None

    lookup = {name: i for i, name in enumerate(class_names)}
    objects: list[VOCObject] = []
    for index, obj in enumerate(root.findall("object"), start=1):
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise DatasetError(f"{path}: object {index} has no <name>")
        if name not in lookup:
            raise DatasetError(
                f"{path}: object {index} has unknown class {name!r}; known classes are "
                f"{', '.join(class_names)} (to use other classes, list them one per line in a "
                "classes.txt, in the year folder or passed as the classes file)"
            )
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise DatasetError(f"{path}: object {index} ({name!r}) has no <bndbox>")
        where = f"object {index} ({name!r}) <bndbox>"
        x1 = _number(bndbox, "xmin", path, where)
        y1 = _number(bndbox, "ymin", path, where)
        x2 = _number(bndbox, "xmax", path, where)
        y2 = _number(bndbox, "ymax", path, where)
        if x2 < x1:
            raise DatasetError(f"{path}: object {index} has xmax ({x2}) < xmin ({x1})")
        if y2 < y1:
            raise DatasetError(f"{path}: object {index} has ymax ({y2}) < ymin ({y1})")
        if x1 < 1 or y1 < 1 or x2 > width or y2 > height:
            raise DatasetError(
                f"{path}: object {index} box ({x1}, {y1}, {x2}, {y2}) lies outside the image "
                f"(VOC boxes must satisfy 1 <= xmin <= xmax <= width={width} and "
                f"1 <= ymin <= ymax <= height={height})"
            )
        objects.append(
            VOCObject(
                name=name,
                label=lookup[name],
                box=(x1, y1, x2, y2),
                difficult=_flag(obj, "difficult", path, index),
                truncated=_flag(obj, "truncated", path, index),
            )
        )

    filename = (root.findtext("filename") or "").strip() or f"{path.stem}.jpg"
    return VOCAnnotation(
        image_id=path.stem, filename=filename, width=width, height=height, depth=depth, objects=objects
    )


# ---------------------------------------------------------------- classes & sets


def read_text_file(path: Path) -> str:
    """A small text file of the dataset (split list, class list): UTF-8, a leading BOM ignored.

    Raises:
        DatasetError: naming the file, if it cannot be read or is not UTF-8 text.
    """
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
            f"save it as UTF-8"
        ) from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read file ({exc.strerror or exc})") from None


def read_class_file(path: Path) -> list[str]:
    lines = read_text_file(path).splitlines()
    names = [line.strip() for line in lines if line.strip()]
    if not names:
        raise DatasetError(f"{path}: class list is empty")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DatasetError(f"{path}: class {name!r} is listed more than once")
        seen.add(name)
    return names


def voc_classes_file(year_dir: PathLike) -> list[str] | None:
    """The class list in ``<year_dir>/classes.txt``, or ``None`` when there is none."""
    candidate = Path(year_dir) / "classes.txt"
    return read_class_file(candidate) if candidate.is_file() else None


# ------------------------------------------------------------------------ images


def read_image_rgb(path: PathLike) -> np.ndarray:
    """Decode a dataset image to RGB uint8 (H, W, 3) with :func:`spyolo.data.images.read_image_file`.

    Raises:
        DatasetError: naming the file, if it is missing, unreadable, corrupt or truncated.
    """
    from spyolo.data.images import read_image_file  # OpenCV: not needed to read annotations

    try:
        return read_image_file(path)
    except ImageReadError as exc:
        raise DatasetError(str(exc)) from None


# ------------------------------------------------------------------------ sets


class VOCSource(NamedTuple):
    """A ``YEAR_FOLDER:split`` set entry: a VOC year folder and the split it reads."""

    year_dir: Path
    split: str

    def __str__(self) -> str:
        return f"{self.year_dir}:{self.split}"

    def declared_classes(self) -> list[str] | None:
        """``classes.txt`` in the year folder, if there is one."""
        return voc_classes_file(self.year_dir)

    def list_samples(self, class_names: Sequence[str]) -> SetListing:
        """The ids of ``ImageSets/Main/<split>.txt``: ``JPEGImages/<id>.jpg`` with ``Annotations/<id>.xml``.

        Raises:
            DatasetError: the folder, ``JPEGImages/``, ``Annotations/`` or the split file is
                missing, or the split lists no id.
        """
        year_dir, split = self.year_dir, self.split
        if not year_dir.is_dir():
            raise DatasetError(f"{year_dir}: dataset folder not found")
        for sub in ("JPEGImages", "Annotations"):
            if not (year_dir / sub).is_dir():
                raise DatasetError(f"{year_dir / sub}: folder not found (expected a VOC year folder layout)")
        split_file = year_dir / "ImageSets" / "Main" / f"{split}.txt"
        if not split_file.is_file():
            raise DatasetError(f"{split_file}: split file not found (unknown split {split!r}?)")
        ids = [line.strip() for line in read_text_file(split_file).splitlines() if line.strip()]
        if not ids:
            raise DatasetError(f"{split_file}: split file lists no image ids")
        names = list(class_names)

        def annotation(image_id: str):
            def read(width: int, height: int) -> VOCAnnotation:
                xml = year_dir / "Annotations" / f"{image_id}.xml"
                if not xml.is_file():
                    raise DatasetError(f"{xml}: annotation file not found (id {image_id!r} is listed in the "
                                       f"split file)")
                return parse_voc_xml(xml, names)
            return read

        return SetListing([Sample(year_dir / "JPEGImages" / f"{i}.jpg", annotation(i)) for i in ids])
