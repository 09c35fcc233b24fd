"""VOC data pipeline: annotations, dataset, transforms, loaders."""

from spyolo.data.build import build_dataset, ensure_synthetic
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
    VOCDataset,
    VOCObject,
    continuous_to_voc,
    load_class_names,
    parse_sets,
    parse_voc_xml,
    read_image_rgb,
    voc_to_continuous,
)

__all__ = [
    "VOC_CLASSES",
    "DatasetError",
    "DetectionTransform",
    "Mosaic",
    "RandomScaleAspectPlace",
    "VOCAnnotation",
    "VOCDataset",
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
    "read_image_rgb",
    "seed_dataset",
    "unmap_boxes",
    "voc_to_continuous",
]
