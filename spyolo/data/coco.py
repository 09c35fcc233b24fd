"""COCO-format detection data (one JSON file of images, annotations and categories + an image folder).

A set entry ``coco:ANNOTATIONS.json:IMAGE_DIR`` in ``data.train_sets`` / ``data.test_sets`` (paths
relative to ``data.root``, or absolute) is read through ``pycocotools.coco.COCO``:

* categories become contiguous classes in the file's order, named by their ``name`` (a file that
  is not the first source must use names of the class list: they are matched by name);
* every image is a sample, also one without annotations (a negative);
* a box ``[x, y, w, h]`` (continuous pixels, top-left corner) becomes the VOC box
  ``(x + 1, y + 1, x + w, y + h)`` (1-based inclusive), so COCO's IoU equals the VOC "+1" IoU;
  a box narrower than a pixel keeps ``x2 = x1``;
* ``iscrowd`` boxes are treated as VOC's difficult ones: ignored in evaluation, dropped from the
  training targets unless ``data.keep_difficult``.

Bad input raises :class:`~spyolo.errors.DatasetError` naming the JSON file, the annotation or
image, and the problem: a file that is not JSON, lacks ``images``, ``categories`` or
``annotations``, or lists no image; a category without an integer id or a name (a non-empty
string), or a repeated id or name; an image without an integer id, a file name, or a positive
integer size, a repeated id, or the same file under two ids; an annotation of an image id the file
does not list; an unknown category id, a box that is not four finite numbers, has no area, or lies
outside its image by more than half a pixel, an ``iscrowd`` other than 0 or 1. The per-image
problems (from the category id on) are collected so that ``data.skip_bad`` can skip those images.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from spyolo.data.samples import Sample, SetListing
from spyolo.data.voc import VOCAnnotation, VOCObject, clipped_voc_box
from spyolo.errors import DatasetError
from spyolo.utils.jsonfile import read_json
from spyolo.utils.text import short_repr

__all__ = ["COCOFile", "COCOSource", "read_coco", "voc_split_to_coco"]

_OUTSIDE_TOLERANCE = 0.5  # pixels a COCO box may stick out of its image (clipped), as float tools produce
_MAX_SIDE = 2**31 - 1  # largest image width or height accepted


class COCOSource(NamedTuple):
    """A ``coco:ANNOTATIONS.json:IMAGE_DIR`` set entry."""

    annotations: Path
    image_dir: Path

    def __str__(self) -> str:
        return f"{self.annotations} ({self.image_dir})"

    def declared_classes(self) -> list[str]:
        """The file's categories, in file order."""
        return read_coco(self.annotations).category_names

    def list_samples(self, class_names: Sequence[str]) -> SetListing:
        """Every image of the file (also those without annotations), its categories matched to
        ``class_names`` by name.

        Raises:
            DatasetError: a file-level problem (module docstring), a missing image folder, or a
                category whose name is not among ``class_names``.
        """
        coco = read_coco(self.annotations)
        if not self.image_dir.is_dir():
            raise DatasetError(f"{self.image_dir}: image folder not found (of {self.annotations})")
        names = list(class_names)
        lookup = {name: i for i, name in enumerate(names)}
        label_of: dict[int, int] = {}
        for cat_id, name in coco.categories:
            if name not in lookup:
                raise DatasetError(
                    f"{self.annotations}: category {name!r} (id {cat_id}) is not among the classes "
                    f"{', '.join(names)} (a COCO set after the first must use the first set's class names)"
                )
            label_of[cat_id] = lookup[name]

        def annotation(image: COCOImage):
            def read(width: int, height: int) -> VOCAnnotation:
                if image.problem is not None:
                    raise DatasetError(image.problem)
                objects = [VOCObject(names[label_of[cat]], label_of[cat], box, crowd, False)
                           for box, cat, crowd in zip(image.boxes, image.category_ids, image.iscrowd)]
                return VOCAnnotation(Path(image.file_name).stem, image.file_name, image.width, image.height, 3,
                                     objects)
            return read

        samples = [Sample(self.image_dir / img.file_name, annotation(img), img.coco_id) for img in coco.images]
        return SetListing(samples, coco=coco, category_ids={label: cat for cat, label in label_of.items()})


@dataclass
class COCOImage:
    """One image of a COCO file, its objects converted (see the module docstring)."""

    coco_id: int
    file_name: str
    width: int
    height: int
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)  # VOC convention
    category_ids: list[int] = field(default_factory=list)
    iscrowd: list[bool] = field(default_factory=list)
    problem: str | None = None  # the first problem found in this image's annotations


@dataclass
class COCOFile:
    """A parsed COCO annotation file.

    Attributes:
        path: the JSON file.
        categories: ``(id, name)`` in the file's order.
        images: one :class:`COCOImage` per image, in the file's order.
        coco: the ``pycocotools.coco.COCO`` object (for the COCO evaluation with the file's ids).
    """

    path: Path
    categories: list[tuple[int, str]]
    images: list[COCOImage]
    coco: Any

    @property
    def category_names(self) -> list[str]:
        return [name for _, name in self.categories]


def _load_json(path: Path) -> dict:
    data = read_json(path, DatasetError, "COCO annotation file")
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: not a COCO annotation file (the top level is not a JSON object)")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{path}: not a COCO annotation file (no '{key}' list)")
    if "annotations" not in data:
        raise DatasetError(f"{path}: no 'annotations' list (a file of images without boxes, such as COCO's image "
                           f"info files, cannot train or evaluate a detector; images without objects take "
                           f"\"annotations\": [])")
    if not isinstance(data["annotations"], list):
        raise DatasetError(f"{path}: 'annotations' must be a list")
    return data


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None (not a number, a boolean, infinite, or too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _coco_object(data: dict) -> Any:
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    return coco


def _read_categories(path: Path, entries: list) -> list[tuple[int, str]]:
    categories: list[tuple[int, str]] = []
    for i, cat in enumerate(entries):
        name = cat.get("name") if isinstance(cat, dict) else None
        if not isinstance(cat, dict) or not _is_int(cat.get("id")) or not isinstance(name, str) or not name.strip():
            raise DatasetError(f"{path}: category {i} needs an integer 'id' and a 'name' (a non-empty string), "
                               f"got {short_repr(cat)}")
        categories.append((cat["id"], name.strip()))
    if not categories:
        raise DatasetError(f"{path}: the file lists no categories")
    for label, values in (("id", [c for c, _ in categories]), ("name", [n for _, n in categories])):
        seen: set = set()
        for value in values:
            if value in seen:
                raise DatasetError(f"{path}: category {label} {short_repr(value)} appears more than once")
            seen.add(value)
    return categories


def _read_images(path: Path, entries: list) -> dict[int, COCOImage]:
    images: dict[int, COCOImage] = {}
    by_file: dict[str, int] = {}
    for i, img in enumerate(entries):
        name = img.get("file_name") if isinstance(img, dict) else None
        if not isinstance(img, dict) or not _is_int(img.get("id")) or not isinstance(name, str) or not name:
            raise DatasetError(f"{path}: image entry {i} needs an integer 'id' and a 'file_name' (a string), "
                               f"got {short_repr(img)}")
        width, height = img.get("width"), img.get("height")
        if not all(_is_int(v) and 0 < v <= _MAX_SIDE for v in (width, height)):
            raise DatasetError(f"{path}: image {img['id']} ({short_repr(name)}) needs positive integer 'width' and "
                               f"'height' (at most {_MAX_SIDE}), got {short_repr(width)} x {short_repr(height)}")
        if img["id"] in images:
            raise DatasetError(f"{path}: image id {img['id']} appears more than once")
        if name in by_file:
            raise DatasetError(f"{path}: images {by_file[name]} and {img['id']} are the same file {short_repr(name)} "
                               f"(its objects would be split between two samples); list each image once")
        by_file[name] = img["id"]
        images[img["id"]] = COCOImage(img["id"], name, width, height)
    if not images:
        raise DatasetError(f"{path}: the file lists no images")
    return images


def read_coco(path: str | Path) -> COCOFile:
    """Parse and check a COCO annotation file (see the module docstring for the rules).

    File-level problems raise :class:`DatasetError`; per-image ones are stored in
    :attr:`COCOImage.problem` (the dataset raises them, or skips the image with ``skip_bad``).
    The COCO object (:attr:`COCOFile.coco`) indexes the checked annotations only, numbered
    1.. in file order.
    """
    path = Path(path)
    data = _load_json(path)
    categories = _read_categories(path, data["categories"])
    images = _read_images(path, data["images"])
    known_categories = {c for c, _ in categories}
    checked: list[dict[str, Any]] = []  # what the COCO object indexes
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise DatasetError(f"{path}: annotation entry {i} is not a JSON object")
        ann_id = short_repr(ann.get("id", i))
        image_id = ann.get("image_id")
        image = images.get(image_id) if _is_int(image_id) else None
        if image is None:
            raise DatasetError(f"{path}: annotation {ann_id} refers to image id {short_repr(image_id)}, "
                               f"which the file does not list (an image id is an integer)")
        where = f"{path}: annotation {ann_id} (image {short_repr(image.file_name)})"
        category_id = ann.get("category_id")
        if not _is_int(category_id) or category_id not in known_categories:
            image.problem = image.problem or f"{where} has unknown category id {short_repr(category_id)}"
            continue
        bbox = ann.get("bbox")
        values = [_number(v) for v in bbox] if isinstance(bbox, list) and len(bbox) == 4 else None
        if values is None or None in values:
            image.problem = image.problem or (f"{where} has a malformed bbox {short_repr(bbox)} "
                                              f"(expected [x, y, w, h], four finite numbers)")
            continue
        crowd = ann.get("iscrowd", 0)
        if crowd not in (0, 1) or not isinstance(crowd, (int, bool)):
            image.problem = image.problem or f"{where} has iscrowd {short_repr(crowd)} (expected 0 or 1)"
            continue
        x, y, w, h = values
        if w <= 0 or h <= 0:
            image.problem = image.problem or f"{where} has a box without area: [x, y, w, h] = {bbox}"
            continue
        tol = _OUTSIDE_TOLERANCE
        if x < -tol or y < -tol or x + w > image.width + tol or y + h > image.height + tol:
            image.problem = image.problem or (
                f"{where} box [x, y, w, h] = {bbox} lies outside the image "
                f"({image.width}x{image.height}; COCO boxes must satisfy 0 <= x, x + w <= width, same for y)"
            )
            continue
        image.boxes.append(clipped_voc_box(x, y, x + w, y + h, image.width, image.height))
        image.category_ids.append(category_id)
        image.iscrowd.append(bool(crowd))
        area = _number(ann.get("area"))
        checked.append({"id": len(checked) + 1, "image_id": image_id, "category_id": category_id,
                        "bbox": [x, y, w, h], "area": area if area is not None and area > 0 else w * h,
                        "iscrowd": int(crowd)})
    index = {
        "images": [{"id": im.coco_id, "file_name": im.file_name, "width": im.width, "height": im.height}
                   for im in images.values()],
        "annotations": checked,
        "categories": [{"id": c, "name": n} for c, n in categories],
    }
    return COCOFile(path, categories, list(images.values()), _coco_object(index))


def voc_split_to_coco(year_dir: str | Path, split: str, class_names: list[str]) -> dict[str, Any]:
    """A VOC year folder's split as a COCO annotation dict (images relative to ``JPEGImages/``).

    Image ids are 1.. in split order, category ids 1.. in ``class_names`` order; a VOC box
    ``(x1, y1, x2, y2)`` becomes ``[x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1]`` and difficult
    objects become ``iscrowd: 1`` (COCO's way to ignore a box). Reading it back with
    :func:`read_coco` gives the same boxes, labels and difficult flags.
    """
    from spyolo.data.voc import parse_voc_xml, read_text_file

    year_dir = Path(year_dir)
    split_file = year_dir / "ImageSets" / "Main" / f"{split}.txt"
    ids = [line.strip() for line in read_text_file(split_file).splitlines() if line.strip()]
    images, annotations = [], []
    for number, image_id in enumerate(ids, start=1):
        ann = parse_voc_xml(year_dir / "Annotations" / f"{image_id}.xml", class_names)
        images.append({"id": number, "file_name": f"{image_id}.jpg", "width": ann.width, "height": ann.height})
        for obj in ann.objects:
            x1, y1, x2, y2 = obj.box
            w, h = x2 - x1 + 1.0, y2 - y1 + 1.0
            annotations.append({"id": len(annotations) + 1, "image_id": number, "category_id": obj.label + 1,
                                "bbox": [x1 - 1.0, y1 - 1.0, w, h], "area": w * h, "iscrowd": int(obj.difficult)})
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}
