"""YOLO text labels: ultralytics' ``data.yaml`` layout and Darknet's ``obj.data`` layout.

A set entry ``yolo:DATA_FILE:SPLIT`` (path relative to ``data.root``, or absolute) names a data
file and one of its splits. Two data files are read:

* **ultralytics** ``*.yaml`` / ``*.yml`` (what ultralytics, Roboflow and most annotation tools
  export)::

      path: .              # the dataset root (optional; relative to this file's folder; default: it)
      train: images/train  # an image folder, a list file of image paths, or a list of those
      val: [images/val, extra/val.txt]
      test: images/test
      names: [cat, dog]    # or {0: cat, 1: dog}; nc (optional) must equal their number

  SPLIT is any key whose value is such a path (``train``, ``val``, ``test``, ...). A folder is
  searched recursively for images (sorted by path). A path starting with ``../`` that does not
  exist is also tried without it (Roboflow writes ``../train/images`` beside ``data.yaml``), as
  ultralytics does. The label of ``.../images/.../NAME.jpg`` is ``.../labels/.../NAME.txt`` (the
  last ``images`` component of the path replaced by ``labels``; without one, beside the image),
  the ultralytics rule.
* **Darknet** ``*.data`` (``classes = 2``, ``train = data/train.txt``, ``valid = data/test.txt``,
  ``names = data/obj.names``, one ``key = value`` a line): SPLIT is a key whose value is a list
  file (or a folder); ``names`` is a file of one class name a line, ``classes`` (optional) must
  equal their number. Darknet resolves its paths from the folder it runs in, usually the one
  above ``data/``: a relative path is taken from the data file's folder, else from its parent.
  The label of ``NAME.jpg`` is ``NAME.txt`` beside it (under ``.../labels/`` for an image under
  ``.../JPEGImages/``, Darknet's VOC scripts).

In a list file, one image path a line (blank lines ignored): ``./x`` is relative to the list
file's folder, another relative path to the dataset root (else the list file's folder).

A label file has one line per box, ``class cx cy w h``: the class index into the names, the
box centre, width and height divided by the image width and height. A missing label file is an
image without objects (counted and reported at start-up, as ultralytics does); repeated lines are
one box (also counted). The boxes become VOC pixels with the checked image size (coordinates
rounded to 1/10000 of a pixel, so that boxes written from whole pixels read back exactly).

Bad input is one line naming the file (and line): a data file that is not YAML or ``key = value``
lines, lacks names or the split, names a missing folder or list file, or finds no image; a
label line without five columns (polygon labels are not read), with a value that is not a
finite number, a class that is not an integer index of the names, a box without area, or a box
reaching outside the image by more than half a pixel. ``data.skip_bad`` leaves out the images
whose labels are bad.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from spyolo.data.images import IMAGE_EXTENSIONS
from spyolo.data.samples import Sample, SetListing
from spyolo.data.voc import VOCAnnotation, VOCObject, clipped_voc_box, read_class_file, read_text_file
from spyolo.errors import DatasetError
from spyolo.utils.text import cut, finite_number, short_repr

__all__ = ["YOLOData", "YOLOSource", "label_path", "read_yolo_data", "read_yolo_labels"]

log = logging.getLogger(__name__)

ULTRALYTICS_SUFFIXES = (".yaml", ".yml")
DARKNET_SUFFIXES = (".data",)
_OUTSIDE_TOLERANCE = 0.5  # pixels a box may reach past its image (clipped), as for COCO boxes
_DECIMALS = 4  # pixel coordinates are rounded to 1/10**_DECIMALS of a pixel
_COLUMNS = ("cx", "cy", "w", "h")


@dataclass(frozen=True)
class YOLOData:
    """A parsed data file.

    Attributes:
        path: the data file.
        layout: ``"ultralytics"`` or ``"darknet"``.
        names: the class names, in index order.
        roots: the folders a relative path is resolved from, in order.
        splits: split key -> its path values (folders or list files).
    """

    path: Path
    layout: str
    names: list[str]
    roots: list[Path]
    splits: dict[str, list[str]]


def _checked_names(path: Path, names: list[str], where: str) -> list[str]:
    if not names:
        raise DatasetError(f"{path}: {where} lists no class")
    seen: set[str] = set()
    for name in names:
        if not name:
            raise DatasetError(f"{path}: {where} has an empty class name")
        if name in seen:
            raise DatasetError(f"{path}: {where} lists class {name!r} more than once")
        seen.add(name)
    return names


def _yaml_names(path: Path, value: Any) -> list[str]:
    scalar = (str, int, float)
    if isinstance(value, list) and all(isinstance(v, scalar) and not isinstance(v, bool) for v in value):
        return _checked_names(path, [str(v).strip() for v in value], "names")
    if isinstance(value, dict) and all(isinstance(v, scalar) and not isinstance(v, bool) for v in value.values()):
        keys = list(value)
        if not all(type(k) is int for k in keys) or set(keys) != set(range(len(keys))):
            raise DatasetError(f"{path}: names as a mapping must have the class indices 0..{len(keys) - 1} as keys, "
                               f"got {short_repr(keys)}")
        return _checked_names(path, [str(value[i]).strip() for i in range(len(keys))], "names")
    raise DatasetError(f"{path}: names must be a list of class names or a mapping index: name, "
                       f"got {short_repr(value)}")


def _split_values(path: Path, key: str, value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise DatasetError(f"{path}: {key} must be a path (an image folder or a list file) or a list of paths, "
                           f"got {short_repr(value)}")
    return [v.strip() for v in values]


def _read_ultralytics(path: Path) -> YOLOData:
    try:
        record = yaml.safe_load(read_text_file(path))
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path}: invalid YAML: {cut(str(exc), 300)}") from None
    if not isinstance(record, dict):
        raise DatasetError(f"{path}: not a YOLO data file (expected a mapping with names and train/val/test "
                           f"paths, got {short_repr(record)})")
    if "names" not in record:
        raise DatasetError(f"{path}: no 'names' (the class names, a list or a mapping index: name)")
    names = _yaml_names(path, record["names"])
    nc = record.get("nc")
    if nc is not None and (not isinstance(nc, int) or isinstance(nc, bool) or nc != len(names)):
        raise DatasetError(f"{path}: nc is {short_repr(nc)} but names lists {len(names)} classes")
    root = path.parent
    if record.get("path") not in (None, ""):
        if not isinstance(record["path"], str):
            raise DatasetError(f"{path}: path must be the dataset's root folder, got {short_repr(record['path'])}")
        root = path.parent / Path(record["path"]).expanduser()
        if not root.is_dir():
            raise DatasetError(f"{path}: path {record['path']!r} is not a folder ({root}; a relative path is taken "
                               f"from the data file's folder)")
    splits = {str(k): _split_values(path, str(k), v) for k, v in record.items()
              if k not in ("names", "nc", "path", "download") and isinstance(v, (str, list)) and v != []}
    return YOLOData(path, "ultralytics", names, [root], splits)


def _read_darknet(path: Path) -> YOLOData:
    entries: dict[str, str] = {}
    for number, line in enumerate(read_text_file(path).splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise DatasetError(f"{path}:{number}: expected 'key = value', got {short_repr(line.strip())}")
        entries[key.strip()] = value.strip()
    roots = [path.parent, path.parent.parent]
    if not entries.get("names"):
        raise DatasetError(f"{path}: no 'names = FILE' (the file of class names, one a line)")
    names_file = _resolve(entries["names"], roots)
    if not names_file.is_file():
        raise DatasetError(f"{path}: names file {entries['names']!r} not found (looked for {names_file})")
    names = _checked_names(names_file, read_class_file(names_file), "the names file")
    classes = entries.get("classes")
    if classes is not None and (not classes.isdigit() or int(classes) != len(names)):
        raise DatasetError(f"{path}: classes = {classes} but {names_file} lists {len(names)} classes")
    splits = {k: [v] for k, v in entries.items() if k not in ("names", "classes", "backup", "eval") and v}
    return YOLOData(path, "darknet", names, roots, splits)


def read_yolo_data(path: str | Path) -> YOLOData:
    """Parse an ultralytics ``data.yaml`` or a Darknet ``obj.data`` (module docstring).

    Raises:
        DatasetError: naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: YOLO data file not found")
    suffix = path.suffix.lower()
    if suffix in ULTRALYTICS_SUFFIXES:
        return _read_ultralytics(path)
    if suffix in DARKNET_SUFFIXES:
        return _read_darknet(path)
    raise DatasetError(f"{path}: not a YOLO data file (expected an ultralytics data.yaml or a Darknet obj.data)")


def _resolve(text: str, roots: Sequence[Path]) -> Path:
    """``text`` as a path: absolute as it is, else under the first root where it exists (else the first)."""
    path = Path(text).expanduser()
    if path.is_absolute():
        return path
    for root in roots:
        if (root / path).exists():
            return root / path
    return roots[0] / path


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _list_file_images(list_file: Path, roots: Sequence[Path]) -> list[Path]:
    images = []
    for number, line in enumerate(read_text_file(list_file).splitlines(), start=1):
        text = line.strip()
        if not text:
            continue
        if text.startswith("./"):
            image = list_file.parent / text[2:]
        else:
            image = _resolve(text, [*roots, list_file.parent])
        if not _is_image(image):
            raise DatasetError(f"{list_file}:{number}: {short_repr(text)} is not an image file name (the suffixes "
                               f"read are {', '.join(sorted(IMAGE_EXTENSIONS))})")
        images.append(image)
    return images


def _split_images(data: YOLOData, split: str) -> list[Path]:
    if split not in data.splits:
        known = ", ".join(sorted(data.splits)) or "none"
        raise DatasetError(f"{data.path}: no split {split!r} (its splits: {known})")
    images: list[Path] = []
    for value in data.splits[split]:
        found = _resolve(value, data.roots)
        if not found.exists() and data.layout == "ultralytics" and value.startswith("../"):
            found = _resolve(value[3:], data.roots)
        if found.is_dir():
            images += sorted(p for p in found.rglob("*") if _is_image(p) and p.is_file())
        elif found.is_file():
            images += _list_file_images(found, data.roots)
        else:
            raise DatasetError(f"{data.path}: {split} path {value!r} not found (looked for {found})")
    if not images:
        raise DatasetError(f"{data.path}: split {split!r} has no images ({', '.join(data.splits[split])})")
    return images


def label_path(image: Path, layout: str = "ultralytics") -> Path:
    """The label file of ``image`` (module docstring): ultralytics replaces the last ``images``
    component of the path by ``labels``, Darknet the last ``JPEGImages``; else beside the image."""
    parts = list(image.parts)
    folder = "images" if layout == "ultralytics" else "JPEGImages"
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == folder:
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def read_yolo_labels(path: str | Path, width: int, height: int,
                     num_classes: int) -> tuple[list[tuple[int, tuple[float, float, float, float]]], int]:
    """The boxes of a label file as ``(class, VOC box)`` for an image of ``width x height`` pixels,
    and how many repeated lines were dropped.

    Raises:
        DatasetError: ``FILE:LINE: problem`` for a bad line (module docstring).
    """
    path = Path(path)
    boxes: list[tuple[int, tuple[float, float, float, float]]] = []
    seen: set[tuple[str, ...]] = set()
    repeated = 0
    for number, line in enumerate(read_text_file(path).splitlines(), start=1):
        columns = tuple(line.split())
        if not columns:
            continue
        where = f"{path}:{number}"
        if len(columns) != 5:
            polygon = " (a polygon: segmentation labels are not read)" if len(columns) > 5 and len(columns) % 2 else ""
            raise DatasetError(f"{where}: {len(columns)} columns, expected 5 (class cx cy w h){polygon}")
        if columns in seen:
            repeated += 1
            continue
        seen.add(columns)
        label = finite_number(columns[0], f"{where}: class", DatasetError)
        if label != int(label) or not 0 <= label < num_classes:
            raise DatasetError(f"{where}: class {columns[0]} is not a class index 0..{num_classes - 1} "
                               f"(the data file names {num_classes} classes)")
        cx, cy, w, h = (finite_number(c, f"{where}: {name}", DatasetError) for c, name in zip(columns[1:], _COLUMNS))
        if w <= 0 or h <= 0:
            raise DatasetError(f"{where}: the box has no area (w {columns[3]}, h {columns[4]})")
        x1, x2 = (cx - w / 2) * width, (cx + w / 2) * width
        y1, y2 = (cy - h / 2) * height, (cy + h / 2) * height
        tol = _OUTSIDE_TOLERANCE
        if x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol:
            raise DatasetError(f"{where}: the box (cx {columns[1]}, cy {columns[2]}, w {columns[3]}, h {columns[4]}) "
                               f"reaches outside the image (its edges must lie in [0, 1]; the image is "
                               f"{width}x{height})")
        corners = (round(v, _DECIMALS) for v in (x1, y1, x2, y2))
        boxes.append((int(label), clipped_voc_box(*corners, width, height)))
    return boxes, repeated


class YOLOSource(NamedTuple):
    """A ``yolo:DATA_FILE:SPLIT`` set entry."""

    data_file: Path
    split: str

    def __str__(self) -> str:
        return f"{self.data_file}:{self.split}"

    def declared_classes(self) -> list[str]:
        """The data file's names."""
        return read_yolo_data(self.data_file).names

    def list_samples(self, class_names: Sequence[str]) -> SetListing:
        """The split's images with their label files, classes matched to ``class_names`` by name.

        Raises:
            DatasetError: a bad data file, a missing split path, a split without images, or a
                name of the data file that is not among ``class_names``.
        """
        data = read_yolo_data(self.data_file)
        names = list(class_names)
        lookup = {name: i for i, name in enumerate(names)}
        missing = [n for n in data.names if n not in lookup]
        if missing:
            raise DatasetError(f"{data.path}: class {missing[0]!r} is not among the classes {', '.join(names)} "
                               f"(a set after the first must use the first set's class names)")
        label_of = [lookup[n] for n in data.names]
        tally: Counter[str] = Counter()

        def annotation(image: Path):
            def read(width: int, height: int) -> VOCAnnotation:
                label = label_path(image, data.layout)
                boxes: list[tuple[int, tuple[float, float, float, float]]] = []
                if label.is_file():
                    boxes, repeated = read_yolo_labels(label, width, height, len(data.names))
                    tally["repeated"] += repeated
                else:
                    tally["unlabelled"] += 1
                tally["read"] += 1
                objects = [VOCObject(names[label_of[c]], label_of[c], box, False, False) for c, box in boxes]
                return VOCAnnotation(image.stem, image.name, width, height, 3, objects)
            return read

        images = _split_images(data, self.split)

        def report() -> None:
            if tally["unlabelled"] and tally["unlabelled"] == tally["read"]:
                log.warning("%s: none of the %d images has a label file (looked for %s, ...): every image is "
                            "read as one without objects", self, tally["read"], label_path(images[0], data.layout))
            elif tally["unlabelled"]:
                log.info("%s: %d of %d images have no label file (read as images without objects)", self,
                         tally["unlabelled"], tally["read"])
            if tally["repeated"]:
                log.info("%s: %d repeated label lines dropped (one box each)", self, tally["repeated"])

        return SetListing([Sample(image, annotation(image)) for image in images], report=report)
