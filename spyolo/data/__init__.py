"""The image data pipeline: the readers of every image kind (VOC, COCO, YOLO), the start-up image
check, the dataset, transforms, loaders, the synthetic set and the VOC download.

Names are imported on first access (PEP 562), so that the light modules (the readers' source
types, which the configuration checks use) load without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spyolo.utils.lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from spyolo.data.coco import COCOSource, read_coco
    from spyolo.data.dataset import DetectionDataset
    from spyolo.data.loader import build_dataloader, collate_detection, seed_dataset
    from spyolo.data.transforms import (
        DetectionTransform,
        Mosaic,
        RandomScaleAspectPlace,
        build_eval_transform,
        build_train_transform,
        letterbox_params,
        map_boxes,
        unmap_boxes,
    )
    from spyolo.data.voc import (
        VOC_CLASSES,
        VOCAnnotation,
        VOCObject,
        VOCSource,
        continuous_to_voc,
        parse_voc_xml,
        read_image_rgb,
        voc_to_continuous,
    )
    from spyolo.data.yolo import YOLOSource
    from spyolo.errors import DatasetError

_LAZY = {
    "COCOSource": "spyolo.data.coco",
    "read_coco": "spyolo.data.coco",
    "DetectionDataset": "spyolo.data.dataset",
    "build_dataloader": "spyolo.data.loader",
    "collate_detection": "spyolo.data.loader",
    "seed_dataset": "spyolo.data.loader",
    "DetectionTransform": "spyolo.data.transforms",
    "Mosaic": "spyolo.data.transforms",
    "RandomScaleAspectPlace": "spyolo.data.transforms",
    "build_eval_transform": "spyolo.data.transforms",
    "build_train_transform": "spyolo.data.transforms",
    "letterbox_params": "spyolo.data.transforms",
    "map_boxes": "spyolo.data.transforms",
    "unmap_boxes": "spyolo.data.transforms",
    "VOC_CLASSES": "spyolo.data.voc",
    "VOCAnnotation": "spyolo.data.voc",
    "VOCObject": "spyolo.data.voc",
    "VOCSource": "spyolo.data.voc",
    "continuous_to_voc": "spyolo.data.voc",
    "parse_voc_xml": "spyolo.data.voc",
    "read_image_rgb": "spyolo.data.voc",
    "voc_to_continuous": "spyolo.data.voc",
    "YOLOSource": "spyolo.data.yolo",
    "DatasetError": "spyolo.errors",
}

__all__ = [
    "COCOSource",
    "DatasetError",
    "DetectionDataset",
    "DetectionTransform",
    "Mosaic",
    "RandomScaleAspectPlace",
    "VOCAnnotation",
    "VOCObject",
    "VOCSource",
    "VOC_CLASSES",
    "YOLOSource",
    "build_dataloader",
    "build_eval_transform",
    "build_train_transform",
    "collate_detection",
    "continuous_to_voc",
    "letterbox_params",
    "map_boxes",
    "parse_voc_xml",
    "read_coco",
    "read_image_rgb",
    "seed_dataset",
    "unmap_boxes",
    "voc_to_continuous",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
