"""Human-readable AP tables and JSON files for VOC evaluation results."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spyolo.utils.io import atomic_write_json

__all__ = ["format_ap_table", "write_json", "MAP_LABEL_VOC07", "MAP_LABEL_AREA"]

MAP_LABEL_VOC07 = "VOC2007 11-point"
MAP_LABEL_AREA = "area (VOC2010+)"


def format_ap_table(res: Mapping[str, Any]) -> str:
    """Per-class table with both AP metrics, counts and the two labelled mAP rows.

    Args:
        res: result of :meth:`spyolo.eval.voc.VOCEvaluator.compute`; if it has a
            ``"coco"`` entry (result of :func:`spyolo.eval.coco.coco_map`), the
            COCO-style figures are appended, clearly labelled.

    Returns:
        A multi-line string; percentages have two decimals. Classes without
        non-difficult ground truth are listed after the table, not averaged.
    """
    iou = float(res["iou_threshold"])
    names = list(res["ap_voc07"].keys())
    width = max([len("class")] + [len(n) for n in names])
    header = (
        f"{'class':<{width}}  {'GT':>6}  {'dets':>8}  {'TP':>6}  {'FP':>8}  "
        f"{'AP 11-pt %':>10}  {'AP area %':>10}"
    )
    lines = [f"VOC detection evaluation (IoU >= {iou:g}, difficult objects ignored)", header,
             "-" * len(header)]
    for n in names:
        lines.append(
            f"{n:<{width}}  {res['npos'][n]:>6d}  {res['num_detections'][n]:>8d}  "
            f"{res['tp'][n]:>6d}  {res['fp'][n]:>8d}  "
            f"{100 * res['ap_voc07'][n]:>10.2f}  {100 * res['ap_area'][n]:>10.2f}"
        )
    lines.append("-" * len(header))
    if res["classes_without_gt"]:
        lines.append(
            "classes without ground truth (not in the mAP): "
            + ", ".join(res["classes_without_gt"])
        )
    unknown = int(res.get("num_detections_without_gt_image", 0))
    if unknown:
        lines.append(f"detections on images without ground truth (false positives): {unknown}")
    label_w = max(len(MAP_LABEL_VOC07), len(MAP_LABEL_AREA))
    lines.append(f"mAP {MAP_LABEL_VOC07:<{label_w}} : {100 * res['map_voc07']:.2f}%"
                 f"  ({len(names)} classes)")
    lines.append(f"mAP {MAP_LABEL_AREA:<{label_w}} : {100 * res['map_area']:.2f}%"
                 f"  ({len(names)} classes)")
    coco = res.get("coco")
    if coco:
        source = f"with {coco['annotations']}'s own ids" if coco.get("annotations") else "not VOC"
        lines.append(
            f"COCO-style (pycocotools, {source}; maxDets {coco['max_dets']}): "
            f"AP@[.5:.95] {100 * coco['map_coco']:.2f}%, AP@.5 {100 * coco['map50_coco']:.2f}%, "
            f"AP@.75 {100 * coco['map75_coco']:.2f}%"
        )
    return "\n".join(lines)


def write_json(
    res: Mapping[str, Any],
    path: str | Path,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write ``{"map_voc07", "map_area", "ap_voc07", "ap_area"}`` (+ ``extra``) as JSON.

    Values are fractions in ``[0, 1]``. The file is written atomically
    (:mod:`spyolo.utils.io`) with normal permissions; its folder is created if needed.

    Args:
        res: result of :meth:`spyolo.eval.voc.VOCEvaluator.compute`.
        path: destination file; its folder must exist.
        extra: optional additional keys (for example ``{"coco": ...}``); they
            may not overwrite the four standard keys.
    """
    data: dict[str, Any] = {
        "map_voc07": float(res["map_voc07"]),
        "map_area": float(res["map_area"]),
        "ap_voc07": {k: float(v) for k, v in res["ap_voc07"].items()},
        "ap_area": {k: float(v) for k, v in res["ap_area"].items()},
    }
    if extra:
        clash = set(extra) & set(data)
        if clash:
            raise ValueError(f"extra keys would overwrite standard keys: {sorted(clash)}")
        data.update(extra)
    atomic_write_json(path, data)


def write_records(records: Mapping[str, Any], path: str | Path) -> None:
    """Write :meth:`spyolo.eval.voc.VOCEvaluator.records` as a numpy ``.npz`` file, atomically;
    :func:`read_records` reads it back."""
    import io

    import numpy as np

    from spyolo.utils.io import atomic_write_bytes

    buf = io.BytesIO()
    arrays = {k: np.asarray(v) for k, v in records.items() if k not in ("class_names", "image_ids", "iou_threshold")}
    np.savez_compressed(buf, class_names=np.asarray(records["class_names"], dtype=str),
                        image_ids=np.asarray(records["image_ids"], dtype=str),
                        iou_threshold=np.asarray(float(records["iou_threshold"])), **arrays)
    atomic_write_bytes(Path(path), buf.getvalue())


def read_records(path: str | Path) -> dict[str, Any]:
    """The records of :func:`write_records` (no pickled objects are read).

    Raises:
        ValueError: one line naming the file, when it is not such a records file (cut, corrupt, other).
    """
    import zipfile

    import numpy as np

    try:
        with np.load(Path(path), allow_pickle=False) as z:
            out: dict[str, Any] = {k: z[k] for k in z.files}
        out["class_names"] = [str(c) for c in out["class_names"]]
        out["image_ids"] = [str(c) for c in out["image_ids"]]
        out["iou_threshold"] = float(out["iou_threshold"])
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a records file of tools/eval.py --records ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'})") from None
    return out
