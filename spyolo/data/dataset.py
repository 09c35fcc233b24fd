"""The detection dataset: VOC year folders and COCO annotation files, alone or mixed.

A set entry of ``data.train_sets`` / ``data.test_sets`` is either

* ``YEAR_FOLDER:split``: a VOC year folder (``JPEGImages/``, ``Annotations/``,
  ``ImageSets/Main/<split>.txt``; :mod:`spyolo.data.voc`), or
* ``coco:ANNOTATIONS.json:IMAGE_DIR``: a COCO annotation file and its image folder
  (:mod:`spyolo.data.coco`),

relative to ``data.root`` or absolute. :func:`parse_sets` reads them, :func:`load_class_names`
finds the class list, and :class:`DetectionDataset` serves the samples of one or more sets as
``(image, target, meta)``, with the same rules for every kind: bad input stops with an error
naming the file, or, with ``skip_bad``, the sample is skipped and listed in one warning.

Box conventions: annotations are held as VOC boxes (1-based inclusive pixels, see
:mod:`spyolo.data.voc`); targets are continuous ``(cx, cy, w, h)`` divided by the output size.
Image tensors are RGB float32 in ``[0, 1]``, channel-first.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from spyolo.data.coco import COCOFile, COCOSource, read_coco
from spyolo.data.images import read_image_file
from spyolo.data.voc import (
    VOC_CLASSES,
    PathLike,
    VOCAnnotation,
    VOCObject,
    parse_voc_xml,
    read_class_file,
    read_text_file,
    voc_classes_file,
    voc_to_continuous,
)
from spyolo.errors import DatasetError, ImageReadError

__all__ = ["COCOSource", "DetectionDataset", "SetSource", "VOCSource", "load_class_names", "parse_sets"]

log = logging.getLogger(__name__)

_MAX_LISTED_SKIPS = 20  # how many skipped samples the skip_bad warning lists by name

TransformFn = Callable[..., dict[str, Any]]


class VOCSource(NamedTuple):
    """A ``YEAR_FOLDER:split`` set entry."""

    year_dir: Path
    split: str


SetSource = VOCSource | COCOSource


def parse_sets(specs: Sequence[str] | str, root: PathLike) -> list[SetSource]:
    """Parse set entries (``"VOC2007:trainval"``, ``"coco:instances_val.json:images/val"``).

    Args:
        specs: a list of entries, or one comma-separated string of them. Relative paths are
            taken under ``root``; absolute ones are used as they are.
        root: the folder that holds the data (e.g. a ``VOCdevkit``).

    Returns:
        :class:`VOCSource` or :class:`~spyolo.data.coco.COCOSource` per entry, in order.
    """
    items = [s for s in specs.split(",")] if isinstance(specs, str) else list(specs)
    items = [s.strip() for s in items if s.strip()]
    if not items:
        raise DatasetError(f"no image sets given (expected entries like 'VOC2007:trainval', got {specs!r})")

    def under_root(text: str) -> Path:
        path = Path(text.strip())
        return path if path.is_absolute() else Path(root) / path

    out: list[SetSource] = []
    for spec in items:
        if spec.startswith("coco:"):
            rest = spec[len("coco:"):]
            ann, sep, image_dir = rest.partition(".json:")
            if not sep or not ann.strip() or not image_dir.strip():
                raise DatasetError(
                    f"bad COCO set entry {spec!r}: expected 'coco:ANNOTATIONS.json:IMAGE_DIR', "
                    "e.g. 'coco:annotations/instances_val.json:images/val'"
                )
            out.append(COCOSource(under_root(ann + ".json"), under_root(image_dir)))
            continue
        year, sep, split = spec.rpartition(":")
        year, split = year.strip(), split.strip()
        if not sep or not year or not split:
            raise DatasetError(
                f"bad image-set spec {spec!r}: expected '<year folder>:<split>', e.g. 'VOC2007:trainval' "
                "(the split names ImageSets/Main/<split>.txt inside the year folder), or "
                "'coco:ANNOTATIONS.json:IMAGE_DIR'"
            )
        out.append(VOCSource(under_root(year), split))
    return out


def load_class_names(classes_file: PathLike | None, sources: Sequence[SetSource]) -> list[str]:
    """The class list of a dataset.

    Order of preference: ``classes_file`` when given (it must exist); else, going through the
    sets in order, the first VOC year folder's ``classes.txt`` or COCO file's categories (in
    the file's order); else the 20 VOC classes. A class file has one name per line; blank lines
    are ignored; a repeated name is an error.
    """
    if classes_file is not None:
        path = Path(classes_file)
        if not path.is_file():
            raise DatasetError(f"{path}: classes file not found")
        return read_class_file(path)
    for source in sources:
        if isinstance(source, COCOSource):
            return read_coco(source.annotations).category_names
        names = voc_classes_file(source.year_dir)
        if names is not None:
            return names
    return list(VOC_CLASSES)


class DetectionDataset(Dataset):  # type: ignore[type-arg]
    """Detection samples of one or more VOC and COCO sets.

    Each item is ``(image, target, meta)``:

    - ``image``: float32 tensor (3, H, W), RGB in ``[0, 1]``; H = W = img_size when a transform
      from :mod:`spyolo.data.transforms` is used, else the original size.
    - ``target``: float32 tensor (N, 5), rows ``[class, cx, cy, w, h]`` normalised by the output
      image width/height (continuous pixels). Difficult (VOC) and crowd (COCO) objects are
      dropped unless ``keep_difficult``.
    - ``meta``: ``{"index", "image_id", "orig_size": (h, w), "letterbox"}`` where ``letterbox`` is
      ``(scale, pad_x, pad_y)`` for a letterbox eval transform and ``None`` otherwise.

    Args:
        sets: the sources (:func:`parse_sets`; plain ``(year_dir, split)`` pairs work too).
        class_names: the class list (:func:`load_class_names`); COCO categories are matched to
            it by name.
        transform: ``transform(image=, bboxes=, labels=) -> dict`` on RGB uint8 HWC images and
            continuous boxes (``build_train_transform`` / ``build_eval_transform``); ``None``
            returns the original image.
        keep_difficult: keep difficult and crowd objects in the training targets.
        skip_bad: skip samples with a missing file, a bad annotation or an image that cannot
            be decoded (corrupt, truncated, or not matching its annotation's size: every image
            is decoded at construction to find them) and log one warning listing them (also
            kept in ``self.skipped``), instead of raising.
        verify_images: decode every image at construction and check its size against the
            annotation (implied by ``skip_bad``). Otherwise a bad image raises at
            ``__getitem__``, naming the file.
        mosaic_prob: probability that a sample is a 4-image mosaic of it and three random other
            samples (its ``meta`` still describes sample ``index``). Only with a training
            transform (``is_train`` and ``apply_mosaic``).
        seed: seed of the dataset's own random stream (mosaic decisions) and of the transform.

    Attributes:
        image_paths, annotations: per sample.
        coco: the COCO file when the dataset is exactly one COCO set (its evaluation can then
            use the file's own image and category ids), else ``None``; ``coco_ids`` and
            ``category_ids`` map samples and classes to them.

    Structural problems (a missing folder, annotation file or split file, an empty split)
    always raise :class:`DatasetError`.
    """

    def __init__(
        self,
        sets: Sequence[SetSource | tuple[PathLike, str]],
        class_names: Sequence[str],
        transform: TransformFn | None = None,
        keep_difficult: bool = False,
        skip_bad: bool = False,
        verify_images: bool = False,
        mosaic_prob: float = 0.0,
        seed: int | None = None,
    ) -> None:
        if not sets:
            raise DatasetError("DetectionDataset: no image sets given")
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
        self.image_paths: list[Path] = []
        self.annotations: list[VOCAnnotation] = []
        self.skipped: list[tuple[str, str]] = []
        self.coco: COCOFile | None = None
        self.coco_ids: list[int | None] = []
        self.category_ids: dict[int, int] = {}
        self._rng = np.random.default_rng()
        if seed is not None:
            self.set_seed(seed)

        sources = [s if isinstance(s, (VOCSource, COCOSource)) else VOCSource(Path(s[0]), s[1]) for s in sets]
        listed = [(source, self._list_samples(source)) for source in sources]
        total = sum(len(samples) for _, samples in listed)
        verify = verify_images or skip_bad
        bar = tqdm(total=total, desc="checking images", unit="img", leave=False, dynamic_ncols=True,
                   disable=not verify or total < 200)
        for _source, samples in listed:
            for path, load, coco_id in samples:
                bar.update(1)
                try:
                    ann = load()
                    if verify:
                        self._check_size(path, read_image_file(path), ann)
                except (DatasetError, ImageReadError) as exc:
                    if not skip_bad:
                        raise DatasetError(str(exc)) from None
                    problem = str(exc)
                    self.skipped.append((problem.split(": ", 1)[0], problem))
                    continue
                self.image_paths.append(path)
                self.annotations.append(ann)
                self.coco_ids.append(coco_id)
        bar.close()
        if len(sources) == 1 and isinstance(sources[0], COCOSource):
            self.coco = read_coco(sources[0].annotations)

        if self.skipped:
            names = "\n".join(f"  {p}" for _, p in self.skipped[:_MAX_LISTED_SKIPS])
            more = len(self.skipped) - _MAX_LISTED_SKIPS
            tail = f"\n  ... and {more} more" if more > 0 else ""
            message = f"dataset skipped {len(self.skipped)} of {total} samples (skip_bad=True):\n{names}{tail}"
            if not self.image_paths:
                raise DatasetError(message.replace("skipped", "skipped all", 1) + "\nno usable samples left")
            log.warning(message)

    # -- construction helpers -------------------------------------------------

    def _list_samples(self, source: SetSource) -> list[tuple[Path, Callable[[], VOCAnnotation], int | None]]:
        """``(image path, annotation loader, COCO image id)`` per sample of one set."""
        if isinstance(source, COCOSource):
            return self._coco_samples(source)
        year_dir, split = source
        samples = []
        for image_id in self._read_split(year_dir, split):
            jpg = year_dir / "JPEGImages" / f"{image_id}.jpg"
            samples.append((jpg, lambda y=year_dir, i=image_id: self._load_voc(y, i), None))
        return samples

    def _coco_samples(self, source: COCOSource) -> list[tuple[Path, Callable[[], VOCAnnotation], int | None]]:
        coco = read_coco(source.annotations)
        if not source.image_dir.is_dir():
            raise DatasetError(f"{source.image_dir}: image folder not found (of {source.annotations})")
        label_of: dict[int, int] = {}
        lookup = {name: i for i, name in enumerate(self.class_names)}
        for cat_id, name in coco.categories:
            if name not in lookup:
                raise DatasetError(
                    f"{source.annotations}: category {name!r} (id {cat_id}) is not among the classes "
                    f"{', '.join(self.class_names)} (a COCO set after the first must use the first set's class names)"
                )
            label_of[cat_id] = lookup[name]
        self.category_ids = {label: cat for cat, label in label_of.items()}

        def loader(image) -> Callable[[], VOCAnnotation]:
            def load() -> VOCAnnotation:
                path = source.image_dir / image.file_name
                if image.problem is not None:
                    raise DatasetError(image.problem)
                if not path.is_file():
                    raise DatasetError(f"{path}: image file not found (image {image.coco_id} of {source.annotations})")
                objects = [
                    VOCObject(self.class_names[label_of[cat]], label_of[cat], box, crowd, False)
                    for box, cat, crowd in zip(image.boxes, image.category_ids, image.iscrowd)
                ]
                return VOCAnnotation(Path(image.file_name).stem, image.file_name, image.width, image.height, 3,
                                     objects)
            return load

        return [(source.image_dir / img.file_name, loader(img), img.coco_id) for img in coco.images]

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

    def _load_voc(self, year_dir: Path, image_id: str) -> VOCAnnotation:
        jpg = year_dir / "JPEGImages" / f"{image_id}.jpg"
        xml = year_dir / "Annotations" / f"{image_id}.xml"
        if not jpg.is_file():
            raise DatasetError(f"{jpg}: image file not found (id {image_id!r} is listed in the split file)")
        if not xml.is_file():
            raise DatasetError(f"{xml}: annotation file not found (id {image_id!r} is listed in the split file)")
        return parse_voc_xml(xml, self.class_names)

    @staticmethod
    def _check_size(path: Path, image: np.ndarray, ann: VOCAnnotation) -> None:
        h, w = image.shape[:2]
        if (h, w) != (ann.height, ann.width):
            raise DatasetError(
                f"{path}: image is {w}x{h} (WxH) but its annotation says {ann.width}x{ann.height}"
            )

    def subset(self, indices: Sequence[int]) -> DetectionDataset:
        """A dataset of the samples at ``indices`` (in that order), sharing this one's transform and
        classes. COCO evaluation with the file's own ids needs every image, so the subset has no
        ``coco`` file."""
        out = copy.copy(self)
        out.image_paths = [self.image_paths[i] for i in indices]
        out.annotations = [self.annotations[i] for i in indices]
        out.coco_ids = [self.coco_ids[i] for i in indices]
        out.coco = None
        out.skipped = []
        return out

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
        return len(self.image_paths)

    def get_annotation(self, index: int) -> VOCAnnotation:
        """The full annotation of sample ``index`` (difficult and crowd objects included)."""
        return self.annotations[index]

    def image_path(self, index: int) -> Path:
        """Path of the image of sample ``index``."""
        return self.image_paths[index]

    def load_image(self, index: int) -> np.ndarray:
        """RGB uint8 (H, W, 3) image of sample ``index``, checked against its annotation's size."""
        path = self.image_paths[index]
        try:
            image = read_image_file(path)
        except ImageReadError as exc:
            raise DatasetError(str(exc)) from None
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
