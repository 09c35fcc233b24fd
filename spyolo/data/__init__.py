"""The data pipeline: VOC and COCO annotations, the dataset, transforms, loaders, the synthetic set."""

from spyolo.data.build import build_dataset, ensure_synthetic
from spyolo.data.coco import COCOSource, read_coco
from spyolo.data.dataset import DetectionDataset, VOCSource, load_class_names, parse_sets
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
    DatasetError,
    VOCAnnotation,
    VOCObject,
    continuous_to_voc,
    parse_voc_xml,
    read_image_rgb,
    voc_to_continuous,
)

__all__ = [
    "VOC_CLASSES",
    "COCOSource",
    "DatasetError",
    "DetectionDataset",
    "DetectionTransform",
    "Mosaic",
    "RandomScaleAspectPlace",
    "VOCAnnotation",
    "VOCSource",
    "VOCObject",
    "build_dataloader",
    "build_dataset",
    "build_eval_transform",
    "build_train_transform",
    "collate_detection",
    "continuous_to_voc",
    "ensure_synthetic",
    "letterbox_params",
    "load_class_names",
    "map_boxes",
    "parse_sets",
    "parse_voc_xml",
    "read_coco",
    "read_image_rgb",
    "seed_dataset",
    "unmap_boxes",
    "voc_to_continuous",
]
