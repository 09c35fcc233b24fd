"""What an image set's reader gives the dataset: its samples, listed before any image is read.

Every image kind (:mod:`spyolo.data.voc`, :mod:`spyolo.data.coco`, :mod:`spyolo.data.yolo`) has a
source type (one set entry) with two methods, so that
:class:`~spyolo.data.dataset.DetectionDataset` serves them all the same way:

* ``list_samples(class_names) -> SetListing``: the set's samples in order (structural problems,
  such as a missing folder or list file, raise :class:`~spyolo.errors.DatasetError`);
* ``declared_classes() -> list[str] | None``: the class list the set itself names, if any.

A sample's annotation is read after the start-up check of its image
(:mod:`spyolo.data.imagecheck`), which gives the image's size: YOLO labels need it to become
pixels, and VOC and COCO annotations are compared with it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from spyolo.data.voc import VOCAnnotation

__all__ = ["ImageSet", "Sample", "SetListing"]


class Sample(NamedTuple):
    """One image of a set.

    Attributes:
        image: the image file.
        annotation: ``annotation(width, height)`` reads the image's objects (the size is the
            checked image's); it raises :class:`~spyolo.errors.DatasetError` naming the file.
        coco_id: the image's id in its COCO file, for COCO sets.
    """

    image: Path
    annotation: Callable[[int, int], VOCAnnotation]
    coco_id: int | None = None


@dataclass
class SetListing:
    """The samples of one set and what its evaluation can use.

    Attributes:
        samples: in the set's order.
        coco: the COCO file (:class:`~spyolo.data.coco.COCOFile`) of a COCO set, whose ids the
            COCO evaluation uses when the dataset is this one set.
        category_ids: class index -> the COCO file's category id.
        report: called once the annotations are read; logs what the reader counted (e.g. images
            without a label file).
    """

    samples: list[Sample]
    coco: Any = None
    category_ids: dict[int, int] = field(default_factory=dict)
    report: Callable[[], None] | None = None


class ImageSet(Protocol):
    """A set entry of an image kind (see the module docstring)."""

    def list_samples(self, class_names: Sequence[str]) -> SetListing: ...

    def declared_classes(self) -> list[str] | None: ...
