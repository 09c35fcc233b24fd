"""Detection evaluation: exact PASCAL VOC AP (VOC2007 11-point and VOC2010+ area),
COCO-style mAP via pycocotools, text-file results, tables/JSON and PR plots.

``spyolo.eval.plots`` is not imported here (it pulls in matplotlib); import it
explicitly when plots are wanted.
"""

from spyolo.eval.coco import coco_map
from spyolo.eval.report import format_ap_table, write_json
from spyolo.eval.textfiles import evaluator_from_text, load_text_results, read_class_file
from spyolo.eval.voc import VOCEvaluator, area_ap, box_iou_voc, voc07_ap

__all__ = [
    "VOCEvaluator",
    "area_ap",
    "box_iou_voc",
    "coco_map",
    "evaluator_from_text",
    "format_ap_table",
    "load_text_results",
    "read_class_file",
    "voc07_ap",
    "write_json",
]
