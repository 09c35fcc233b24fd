"""PASCAL VOC annotations and the VOC detection dataset.

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

Image tensors returned by :class:`VOCDataset` are RGB, float32 in ``[0, 1]``
(uint8 / 255, no mean/std), channel-first; the division and the HWC -> CHW change are
done by the dataset, after the transform (transforms work on RGB uint8 HWC).
"""

from __future__ import annotations

import math
import os
import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm
from torch.utils.data import Dataset

from spyolo.data.images import read_image_file
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

# How many skipped samples the skip_bad warning lists by name.
_MAX_LISTED_SKIPS = 20

log = logging.getLogger(__name__)


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


def _read_class_file(path: Path) -> list[str]:
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


def load_class_names(classes_file: PathLike | None, year_dirs: Sequence[PathLike]) -> list[str]:
    """Return the class list.

    Order of preference: ``classes_file`` when given (it must exist); else the first
    ``<year_dir>/classes.txt`` that exists; else :data:`VOC_CLASSES`. A class file has
    one name per line; blank lines are ignored; a repeated name is an error.
    """
    if classes_file is not None:
        path = Path(classes_file)
        if not path.is_file():
            raise DatasetError(f"{path}: classes file not found")
        return _read_class_file(path)
    for year_dir in year_dirs:
        candidate = Path(year_dir) / "classes.txt"
        if candidate.is_file():
            return _read_class_file(candidate)
    return list(VOC_CLASSES)


def parse_sets(specs: Sequence[str] | str, root: PathLike) -> list[tuple[Path, str]]:
    """Parse image-set specs such as ``"VOC2007:trainval"``.

    Args:
        specs: a list of ``"<year folder>:<split>"`` strings, or one comma-separated
            string of them. A relative year folder is taken under ``root``; an
            absolute one is used as is.
        root: the folder that holds the year folders (e.g. a ``VOCdevkit``).

    Returns:
        ``(year_dir, split)`` pairs, in order.
    """
    items = [s for s in specs.split(",")] if isinstance(specs, str) else list(specs)
    items = [s.strip() for s in items if s.strip()]
    if not items:
        raise DatasetError(f"no image sets given (expected specs like 'VOC2007:trainval', got {specs!r})")
    out: list[tuple[Path, str]] = []
    for spec in items:
        year, sep, split = spec.rpartition(":")
        year, split = year.strip(), split.strip()
        if not sep or not year or not split:
            raise DatasetError(
                f"bad image-set spec {spec!r}: expected '<year folder>:<split>', e.g. 'VOC2007:trainval' "
                "(the split names ImageSets/Main/<split>.txt inside the year folder)"
            )
        year_path = Path(year)
        out.append((year_path if year_path.is_absolute() else Path(root) / year_path, split))
    return out


# ------------------------------------------------------------------------ images


def read_image_rgb(path: PathLike) -> np.ndarray:
    """Decode a dataset image to RGB uint8 (H, W, 3) with :func:`spyolo.data.images.read_image_file`.

    Raises:
        DatasetError: naming the file, if it is missing, unreadable, corrupt or truncated.
    """
    try:
        return read_image_file(path)
    except ImageReadError as exc:
        raise DatasetError(str(exc)) from None


# ----------------------------------------------------------------------- dataset

TransformFn = Callable[..., dict[str, Any]]


class VOCDataset(Dataset):  # type: ignore[type-arg]
    """PASCAL VOC detection dataset over one or more ``(year_dir, split)`` sets.

    Each item is ``(image, target, meta)``:

    - ``image``: float32 tensor (3, H, W), RGB in ``[0, 1]``; H = W = img_size when
      a transform from :mod:`spyolo.data.transforms` is used, else the original size.
    - ``target``: float32 tensor (N, 5), rows ``[class, cx, cy, w, h]`` normalised by
      the output image width/height (continuous-pixel convention, see module doc).
      Difficult objects are dropped unless ``keep_difficult``.
    - ``meta``: ``{"index", "image_id", "orig_size": (h, w), "letterbox"}`` where
      ``letterbox`` is ``(scale, pad_x, pad_y)`` for a letterbox eval transform and
      ``None`` otherwise (see :func:`spyolo.data.transforms.unmap_boxes`).

    Args:
        sets: ``(year_dir, split)`` pairs (see :func:`parse_sets`).
        class_names: the class list (see :func:`load_class_names`).
        transform: a callable ``transform(image=, bboxes=, labels=) -> dict`` taking
            RGB uint8 HWC and continuous pixel boxes and returning the same keys (plus
            optionally ``"letterbox"``), e.g. from ``build_train_transform`` /
            ``build_eval_transform``. ``None`` returns the original image.
        keep_difficult: keep difficult objects in the training targets.
        skip_bad: skip samples with a missing file, a bad annotation or an image that
            cannot be decoded (corrupt, truncated, or not matching its annotation's size:
            every image is decoded at construction to find them) and log one warning
            listing them (also kept in ``self.skipped``), instead of raising.
        verify_images: decode every image at construction and check its size against
            the XML (implied by ``skip_bad``). Otherwise a bad image raises at ``__getitem__``,
            naming the file.
        mosaic_prob: probability that a sample is a 4-image mosaic of it and three
            random other samples (its ``meta`` still describes sample ``index``).
            Only valid with a training transform (one with ``is_train`` true and an
            ``apply_mosaic`` method); any other transform with ``mosaic_prob > 0`` is
            an error.
        seed: seed of the dataset's own random stream (mosaic decisions) and of the
            transform (see :meth:`set_seed`).

    Structural problems (missing year folder, JPEGImages/, Annotations/ or split
    file, empty split file) always raise :class:`DatasetError`.
    """

    def __init__(
        self,
        sets: Sequence[tuple[PathLike, str]],
        class_names: Sequence[str],
        transform: TransformFn | None = None,
        keep_difficult: bool = False,
        skip_bad: bool = False,
        verify_images: bool = False,
        mosaic_prob: float = 0.0,
        seed: int | None = None,
    ) -> None:
        if not sets:
            raise DatasetError("VOCDataset: no image sets given")
        if not 0.0 <= mosaic_prob <= 1.0:
            raise ValueError(f"mosaic_prob must be in [0, 1], got {mosaic_prob}")
        if mosaic_prob > 0.0 and not (getattr(transform, "is_train", False) and hasattr(transform, "apply_mosaic")):
            raise ValueError(
                "mosaic_prob > 0 needs a training transform (spyolo.data.transforms.build_train_transform)"
            )
        self.class_names: list[str] = list(class_names)
        self.transform = transform
        self.keep_difficult = keep_difficult
        self.mosaic_prob = float(mosaic_prob)
        self.items: list[tuple[Path, str]] = []
        self.annotations: list[VOCAnnotation] = []
        self.skipped: list[tuple[str, str]] = []
        self._rng = np.random.default_rng()
        if seed is not None:
            self.set_seed(seed)

        verify = verify_images or skip_bad
        listed_sets = [(Path(year_dir), self._read_split(Path(year_dir), split)) for year_dir, split in sets]
        total = sum(len(ids) for _, ids in listed_sets)
        bar = tqdm(total=total, desc="checking images", unit="img", leave=False, dynamic_ncols=True,
                   disable=not verify or total < 200)
        for year_dir, ids in listed_sets:
            for image_id in ids:
                bar.update(1)
                try:
                    ann = self._load_sample(year_dir, image_id, verify)
                except DatasetError as exc:
                    if not skip_bad:
                        raise
                    problem = str(exc)
                    self.skipped.append((self._bad_path(year_dir, image_id, problem), problem))
                    continue
                self.items.append((year_dir, image_id))
                self.annotations.append(ann)
        bar.close()

        if self.skipped:
            listed = "\n".join(f"  {p}" for _, p in self.skipped[:_MAX_LISTED_SKIPS])
            more = len(self.skipped) - _MAX_LISTED_SKIPS
            tail = f"\n  ... and {more} more" if more > 0 else ""
            message = f"VOCDataset skipped {len(self.skipped)} of {total} samples (skip_bad=True):\n{listed}{tail}"
            if not self.items:
                raise DatasetError(message.replace("skipped", "skipped all", 1) + "\nno usable samples left")
            log.warning(message)

    # -- construction helpers -------------------------------------------------

    @staticmethod
    def _read_split(year_dir: Path, split: str) -> list[str]:
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
        return ids

    def _load_sample(self, year_dir: Path, image_id: str, verify_image: bool) -> VOCAnnotation:
        jpg = year_dir / "JPEGImages" / f"{image_id}.jpg"
        xml = year_dir / "Annotations" / f"{image_id}.xml"
        if not jpg.is_file():
            raise DatasetError(f"{jpg}: image file not found (id {image_id!r} is listed in the split file)")
        if not xml.is_file():
            raise DatasetError(f"{xml}: annotation file not found (id {image_id!r} is listed in the split file)")
        ann = parse_voc_xml(xml, self.class_names)
        if verify_image:
            image = read_image_rgb(jpg)
            self._check_size(jpg, image, ann)
        return ann

    @staticmethod
    def _bad_path(year_dir: Path, image_id: str, problem: str) -> str:
        for sub, ext in (("JPEGImages", ".jpg"), ("Annotations", ".xml")):
            candidate = str(year_dir / sub / f"{image_id}{ext}")
            if problem.startswith(candidate):
                return candidate
        return str(year_dir / image_id)

    @staticmethod
    def _check_size(path: Path, image: np.ndarray, ann: VOCAnnotation) -> None:
        h, w = image.shape[:2]
        if (h, w) != (ann.height, ann.width):
            raise DatasetError(
                f"{path}: image is {w}x{h} (WxH) but its annotation says {ann.width}x{ann.height}"
            )

    # -- randomness -----------------------------------------------------------

    def set_seed(self, seed: int) -> None:
        """Re-seed the dataset's random stream and its transform's (if it has ``set_seed``).

        Called by the loader's ``worker_init_fn`` in every worker, and by
        ``build_dataloader`` for in-process loading (``workers=0``).
        """
        seq = np.random.SeedSequence(seed)
        own, for_transform = seq.spawn(2)
        self._rng = np.random.default_rng(own)
        set_transform_seed = getattr(self.transform, "set_seed", None)
        if callable(set_transform_seed):
            set_transform_seed(int(for_transform.generate_state(1)[0]))

    # -- access ---------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.items)

    def get_annotation(self, index: int) -> VOCAnnotation:
        """The full annotation of sample ``index`` (difficult objects included)."""
        return self.annotations[index]

    def image_path(self, index: int) -> Path:
        """Path of the JPEG of sample ``index``."""
        year_dir, image_id = self.items[index]
        return year_dir / "JPEGImages" / f"{image_id}.jpg"

    def load_image(self, index: int) -> np.ndarray:
        """RGB uint8 (H, W, 3) image of sample ``index``, checked against the XML size."""
        path = self.image_path(index)
        image = read_image_rgb(path)
        self._check_size(path, image, self.annotations[index])
        return image

    def _training_objects(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Continuous boxes (N, 4) and labels (N,) used as targets for ``index``."""
        ann = self.annotations[index]
        boxes = voc_to_continuous(ann.boxes())
        labels = ann.labels()
        if not self.keep_difficult:
            keep = ~ann.difficult()
            boxes, labels = boxes[keep], labels[keep]
        return boxes, labels

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        ann = self.annotations[index]
        letterbox: tuple[float, int, int] | None = None
        if self.mosaic_prob > 0.0 and self._rng.random() < self.mosaic_prob:
            others = self._rng.integers(0, len(self), size=3)
            samples = []
            for j in (index, *(int(k) for k in others)):
                boxes, labels = self._training_objects(j)
                samples.append((self.load_image(j), boxes, labels))
            out = self.transform.apply_mosaic(samples)  # type: ignore[union-attr]
            image, boxes, labels = out["image"], out["bboxes"], out["labels"]
        else:
            image = self.load_image(index)
            boxes, labels = self._training_objects(index)
            if self.transform is not None:
                out = self.transform(image=image, bboxes=boxes, labels=labels)
                image, boxes, labels = out["image"], out["bboxes"], out["labels"]
                letterbox = out.get("letterbox")

        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        labels = np.asarray(labels, dtype=np.float32).reshape(-1)
        h_out, w_out = image.shape[:2]
        target = np.zeros((len(labels), 5), dtype=np.float32)
        if len(labels):
            target[:, 0] = labels
            target[:, 1] = (boxes[:, 0] + boxes[:, 2]) / (2.0 * w_out)
            target[:, 2] = (boxes[:, 1] + boxes[:, 3]) / (2.0 * h_out)
            target[:, 3] = (boxes[:, 2] - boxes[:, 0]) / w_out
            target[:, 4] = (boxes[:, 3] - boxes[:, 1]) / h_out

        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
        meta = {
            "index": index,
            "image_id": ann.image_id,
            "orig_size": (ann.height, ann.width),
            "letterbox": letterbox,
        }
        return tensor, torch.from_numpy(target), meta
