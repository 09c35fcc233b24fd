"""The detection dataset: image sets of every kind (VOC, COCO, YOLO), alone or mixed.

A set is a source of :mod:`spyolo.data.samples` (a VOC year folder and split, a COCO file and its
image folder, a YOLO data file and split: :mod:`spyolo.data.voc`, :mod:`spyolo.data.coco`,
:mod:`spyolo.data.yolo`); ``spyolo.datasets`` turns the entries of ``data.train_sets`` /
``data.test_sets`` into them. :class:`DetectionDataset` lists the samples of its sets, checks every
image at construction (:mod:`spyolo.data.imagecheck`: header and end marker, cached between runs),
reads the annotations, and serves ``(image, target, meta)``, with the same rules for every kind:
bad input stops with one line naming the file, or, with ``skip_bad``, the sample is left out and
listed in one warning.

Box conventions: annotations are held as VOC boxes (1-based inclusive pixels, see
:mod:`spyolo.data.voc`); targets are continuous ``(cx, cy, w, h)`` divided by the output size.
Image tensors are RGB float32 in ``[0, 1]``, channel-first.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from spyolo.data.coco import COCOFile
from spyolo.data.imagecheck import check_images
from spyolo.data.images import read_image_file
from spyolo.data.samples import ImageSet
from spyolo.data.voc import PathLike, VOCAnnotation, VOCSource, voc_to_continuous
from spyolo.errors import DatasetError, ImageReadError

__all__ = ["DetectionDataset", "bad_samples_message"]

log = logging.getLogger(__name__)

_MAX_LISTED_SKIPS = 20  # how many skipped samples the skip_bad warning lists by name

TransformFn = Callable[..., dict[str, Any]]


def bad_samples_message(problems: Sequence[str], total: int, what: str = "samples") -> str:
    """The one line that stops a start on bad samples: the first problem, how many there are, and
    the way to leave them out."""
    n = len(problems)
    verb = "is" if n == 1 else "are"
    return (f"{problems[0]} ({n} of {total} {what} {verb} bad; data.skip_bad=true leaves them out and lists "
            f"them)")


class DetectionDataset(Dataset):  # type: ignore[type-arg]
    """Detection samples of one or more image sets (VOC, COCO, YOLO).

    Each item is ``(image, target, meta)``:

    - ``image``: float32 tensor (3, H, W), RGB in ``[0, 1]``; H = W = img_size when a transform
      from :mod:`spyolo.data.transforms` is used, else the original size.
    - ``target``: float32 tensor (N, 5), rows ``[class, cx, cy, w, h]`` normalised by the output
      image width/height (continuous pixels). Difficult (VOC) and crowd (COCO) objects are
      dropped unless ``keep_difficult``.
    - ``meta``: ``{"index", "image_id", "orig_size": (h, w), "letterbox"}`` where ``letterbox`` is
      ``(scale, pad_x, pad_y)`` for a letterbox eval transform and ``None`` otherwise.

    Args:
        sets: the sources (:mod:`spyolo.data.samples`; plain ``(year_dir, split)`` pairs are VOC
            year folders).
        class_names: the class list; COCO categories and YOLO names are matched to it by name.
        transform: ``transform(image=, bboxes=, labels=) -> dict`` on RGB uint8 HWC images and
            continuous boxes (``build_train_transform`` / ``build_eval_transform``); ``None``
            returns the original image.
        keep_difficult: keep difficult and crowd objects in the training targets.
        skip_bad: leave out the samples with a bad image (missing, empty, unreadable header,
            truncated, too large, undecodable, or not the size its annotation says) or a bad
            annotation, and log one warning listing them (also kept in ``self.skipped``), instead
            of stopping at start-up with one line naming the first. Implies ``verify_images``.
        verify_images: decode every image whole at construction (slower the first time; cached),
            which also finds images that cannot be decoded although their header and end are
            whole. Without it (and ``skip_bad``) only the header and end marker are checked.
        mosaic_prob: probability that a sample is a 4-image mosaic of it and three random other
            samples (its ``meta`` still describes sample ``index``). Only with a training
            transform (``is_train`` and ``apply_mosaic``).
        seed: seed of the dataset's own random stream (mosaic decisions) and of the transform.
        progress: show a progress bar while many images are checked.

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
        sets: Sequence[ImageSet | tuple[PathLike, str]],
        class_names: Sequence[str],
        transform: TransformFn | None = None,
        keep_difficult: bool = False,
        skip_bad: bool = False,
        verify_images: bool = False,
        mosaic_prob: float = 0.0,
        seed: int | None = None,
        progress: bool = True,
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

        sources = [s if hasattr(s, "list_samples") else VOCSource(Path(s[0]), s[1]) for s in sets]  # type: ignore[index]
        listings = [source.list_samples(self.class_names) for source in sources]
        samples = [sample for listing in listings for sample in listing.samples]
        decode = verify_images or skip_bad  # skipping bad images finds the undecodable ones too
        checks = check_images([sample.image for sample in samples], decode=decode, progress=progress)
        problems: list[str] = []
        for sample, check in zip(samples, checks):
            problem = check.problem
            if problem is None:
                try:
                    ann = sample.annotation(check.width, check.height)
                    self._check_size(sample.image, (check.height, check.width), ann)
                except DatasetError as exc:
                    problem = str(exc)
            if problem is not None:
                problems.append(problem)
                continue
            self.image_paths.append(sample.image)
            self.annotations.append(ann)
            self.coco_ids.append(sample.coco_id)
        for listing in listings:
            if listing.report is not None:
                listing.report()
        if len(listings) == 1 and listings[0].coco is not None:
            self.coco, self.category_ids = listings[0].coco, listings[0].category_ids

        if problems and not skip_bad:
            raise DatasetError(bad_samples_message(problems, len(samples)))
        self.skipped = [(p.split(": ", 1)[0], p) for p in problems]
        if self.skipped:
            names = "\n".join(f"  {p}" for _, p in self.skipped[:_MAX_LISTED_SKIPS])
            more = len(self.skipped) - _MAX_LISTED_SKIPS
            tail = f"\n  ... and {more} more" if more > 0 else ""
            message = f"dataset skipped {len(self.skipped)} of {len(samples)} samples (skip_bad=True):\n{names}{tail}"
            if not self.image_paths:
                raise DatasetError(message.replace("skipped", "skipped all", 1) + "\nno usable samples left")
            log.warning(message)

    # -- construction helpers -------------------------------------------------

    @staticmethod
    def _check_size(path: Path, shape: tuple[int, ...], ann: VOCAnnotation) -> None:
        h, w = shape[:2]
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
        self._check_size(path, image.shape, self.annotations[index])
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
