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

Bad input (a file that is not JSON or lacks ``images``/``categories``, an annotation of an unknown
image or category, a box that is not four finite numbers, has no area, or lies outside its image
by more than half a pixel, an image without its file or size) raises
:class:`~spyolo.errors.DatasetError` naming the JSON file, the annotation or image, and the
problem; per-image problems are collected so that ``data.skip_bad`` can skip those images.
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from spyolo.errors import DatasetError
from spyolo.utils.jsonfile import read_json

__all__ = ["COCOFile", "COCOSource", "read_coco", "voc_split_to_coco"]

_OUTSIDE_TOLERANCE = 0.5  # pixels a COCO box may stick out of its image (clipped), as float tools produce


class COCOSource(NamedTuple):
    """A ``coco:ANNOTATIONS.json:IMAGE_DIR`` set entry."""

    annotations: Path
    image_dir: Path


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
    if not isinstance(data.setdefault("annotations", []), list):
        raise DatasetError(f"{path}: 'annotations' must be a list")
    return data


def _coco_object(data: dict) -> Any:
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    return coco


def read_coco(path: str | Path) -> COCOFile:
    """Parse and check a COCO annotation file (see the module docstring for the rules).

    File-level problems raise :class:`DatasetError`; per-image ones are stored in
    :attr:`COCOImage.problem` (the dataset raises them, or skips the image with ``skip_bad``).
    """
    path = Path(path)
    data = _load_json(path)
    categories: list[tuple[int, str]] = []
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or not str(cat.get("name", "")).strip():
            raise DatasetError(f"{path}: category {i} needs an integer 'id' and a 'name'")
        categories.append((cat["id"], str(cat["name"]).strip()))
    ids = [c for c, _ in categories]
    names = [n for _, n in categories]
    for label, values in (("id", ids), ("name", names)):
        repeated = sorted({v for v in values if values.count(v) > 1}, key=str)
        if repeated:
            raise DatasetError(f"{path}: category {label} {repeated[0]!r} appears more than once")
    if not categories:
        raise DatasetError(f"{path}: the file lists no categories")

    images: dict[int, COCOImage] = {}
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or not isinstance(img.get("id"), int) or not img.get("file_name"):
            raise DatasetError(f"{path}: image entry {i} needs an integer 'id' and a 'file_name'")
        width, height = img.get("width"), img.get("height")
        if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
            raise DatasetError(f"{path}: image {img['id']} ({img['file_name']!r}) needs positive integer "
                               f"'width' and 'height'")
        if img["id"] in images:
            raise DatasetError(f"{path}: image id {img['id']} appears more than once")
        images[img["id"]] = COCOImage(img["id"], str(img["file_name"]), width, height)

    known_categories = set(ids)
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise DatasetError(f"{path}: annotation entry {i} is not a JSON object")
        ann_id = ann.get("id", i)
        image = images.get(ann.get("image_id"))
        if image is None:
            raise DatasetError(f"{path}: annotation {ann_id} refers to image id {ann.get('image_id')!r}, "
                               f"which the file does not list")
        where = f"{path}: annotation {ann_id} (image {image.file_name!r})"
        if ann.get("category_id") not in known_categories:
            image.problem = image.problem or f"{where} has unknown category id {ann.get('category_id')!r}"
            continue
        bbox = ann.get("bbox")
        if (not isinstance(bbox, list) or len(bbox) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)):
            image.problem = image.problem or f"{where} has a malformed bbox {bbox!r} (expected [x, y, w, h])"
            continue
        x, y, w, h = (float(v) for v in bbox)
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
        # continuous corners clipped to the image, then VOC's 1-based inclusive pixels (at least one pixel)
        x1, y1 = max(0.0, x), max(0.0, y)
        x2, y2 = min(float(image.width), x + w), min(float(image.height), y + h)
        vx1, vy1 = min(x1 + 1.0, float(image.width)), min(y1 + 1.0, float(image.height))
        image.boxes.append((vx1, vy1, max(x2, vx1), max(y2, vy1)))
        image.category_ids.append(int(ann["category_id"]))
        image.iscrowd.append(bool(ann.get("iscrowd", 0)))
    return COCOFile(path, categories, list(images.values()), _coco_object(data))


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
