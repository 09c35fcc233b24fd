"""COCO-format datasets: category mapping, crowd boxes, negatives, bad input, mixed sets, and a
train + eval round trip on a tiny synthetic COCO split."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import tiny_config
from spyolo.cli import eval as eval_cli
from spyolo.cli import synth as synth_cli
from spyolo.cli import train as train_cli
from spyolo.config import save_config
from spyolo.data.coco import COCOSource, read_coco, voc_split_to_coco
from spyolo.data.dataset import DetectionDataset
from spyolo.data.transforms import build_eval_transform
from spyolo.data.voc import VOCSource
from spyolo.datasets.kinds import class_names, parse_entries
from spyolo.errors import DatasetError


def _image(path: Path, w: int, h: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 90, np.uint8))


def _coco(tmp_path: Path, annotations: list[dict] | None = None, **extra) -> tuple[Path, Path]:
    """A COCO file with categories 7 'zebra', 3 'apple', 12 'kite' (file order) and three images."""
    images = tmp_path / "img"
    for name, (w, h) in {"a.jpg": (40, 30), "b.jpg": (50, 40), "empty.jpg": (20, 20)}.items():
        _image(images / name, w, h)
    data = {
        "images": [{"id": 10, "file_name": "a.jpg", "width": 40, "height": 30},
                   {"id": 20, "file_name": "b.jpg", "width": 50, "height": 40},
                   {"id": 30, "file_name": "empty.jpg", "width": 20, "height": 20}],
        "categories": [{"id": 7, "name": "zebra"}, {"id": 3, "name": "apple"}, {"id": 12, "name": "kite"}],
        "annotations": annotations if annotations is not None else [
            {"id": 1, "image_id": 10, "category_id": 3, "bbox": [4.0, 5.0, 20.0, 10.0], "area": 200, "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 12, "bbox": [0.0, 0.0, 8.0, 8.0], "area": 64, "iscrowd": 1},
            {"id": 3, "image_id": 20, "category_id": 7, "bbox": [10.0, 10.0, 30.0, 20.0], "area": 600, "iscrowd": 0},
        ],
        **extra,
    }
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps(data))
    return ann, images


def test_categories_crowd_and_negatives(tmp_path: Path) -> None:
    ann, images = _coco(tmp_path)
    entries = parse_entries([f"coco:{ann}:{images}"], "/unused")
    sets = [e.source for e in entries]
    assert sets == [COCOSource(ann, images)]
    names = class_names(None, entries)
    assert names == ["zebra", "apple", "kite"]  # contiguous classes in the file's order
    ds = DetectionDataset(sets, names, transform=build_eval_transform(64))
    assert len(ds) == 3 and ds.coco_ids == [10, 20, 30]
    assert ds.category_ids == {0: 7, 1: 3, 2: 12}
    a = ds.get_annotation(0)
    assert a.labels().tolist() == [1, 2] and a.difficult().tolist() == [False, True]  # iscrowd = difficult
    np.testing.assert_allclose(a.boxes()[0], [5, 6, 24, 15])  # [x, y, w, h] -> VOC 1-based inclusive
    assert ds[0][1].shape == (1, 5)  # the crowd box is not a training target ...
    kept = DetectionDataset(sets, names, transform=build_eval_transform(64), keep_difficult=True)
    assert kept[0][1].shape == (2, 5)  # ... unless keep_difficult
    assert ds.get_annotation(2).objects == [] and ds[2][1].shape == (0, 5)  # a negative image is kept


@pytest.mark.parametrize("case, needle", [
    ("missing_image", "b.jpg: image file not found"),
    ("outside",
     "annotation 3 (image 'b.jpg') box [x, y, w, h] = [30.0, 30.0, 30.0, 20.0] lies outside the image (50x40"),
    ("unknown_category", "annotation 3 (image 'b.jpg') has unknown category id 99"),
    ("no_area", "annotation 3 (image 'b.jpg') has a box without area"),
])
def test_bad_annotations_name_the_file_or_are_skipped(tmp_path: Path, case: str, needle: str) -> None:
    ann, images = _coco(tmp_path)
    data = json.loads(ann.read_text())
    bad = data["annotations"][2]
    if case == "missing_image":
        (images / "b.jpg").unlink()
    elif case == "outside":
        bad["bbox"] = [30.0, 30.0, 30.0, 20.0]
    elif case == "unknown_category":
        bad["category_id"] = 99
    else:
        bad["bbox"] = [10.0, 10.0, 0.0, 5.0]
    ann.write_text(json.dumps(data))
    sets = [COCOSource(ann, images)]
    names = ["zebra", "apple", "kite"]
    with pytest.raises(DatasetError) as err:
        DetectionDataset(sets, names)
    assert needle in str(err.value)
    ds = DetectionDataset(sets, names, skip_bad=True)
    assert ds.coco_ids == [10, 30] and needle in ds.skipped[0][1]


def test_malformed_files_are_one_line_errors(tmp_path: Path) -> None:
    ann, images = _coco(tmp_path)
    ann.write_text('{"images": [], "categories": [')
    with pytest.raises(DatasetError, match=r"instances.json: malformed JSON \(Expecting value at line 1"):
        read_coco(ann)
    ann.write_text('{"images": []}')
    with pytest.raises(DatasetError, match=r"instances.json: not a COCO annotation file \(no 'categories' list\)"):
        read_coco(ann)
    with pytest.raises(DatasetError, match="nope.json: COCO annotation file not found"):
        read_coco(tmp_path / "nope.json")
    with pytest.raises(DatasetError, match="bad set entry 'coco:only.json': expected 'coco:ANNOTATIONS.json:"):
        parse_entries(["coco:only.json"], tmp_path)


def test_mixed_voc_and_coco_sets(tiny_voc_root: Path, tmp_path: Path) -> None:
    voc = tiny_voc_root / "SYNTH"
    names = (voc / "classes.txt").read_text().split()
    coco_file = tmp_path / "test.json"
    coco_file.write_text(json.dumps(voc_split_to_coco(voc, "test", names)))
    entries = parse_entries([f"{voc}:train", f"coco:{coco_file}:{voc / 'JPEGImages'}"], "/unused")
    sets = [e.source for e in entries]
    assert isinstance(sets[0], VOCSource) and isinstance(sets[1], COCOSource)
    assert class_names(None, entries) == names
    ds = DetectionDataset(sets, names)
    n_train = len((voc / "ImageSets" / "Main" / "train.txt").read_text().split())
    assert len(ds) == n_train + 8 and ds.coco is None  # mixed: no single COCO file to evaluate with
    # the COCO copy of the test split holds exactly the VOC annotations
    voc_test = DetectionDataset([VOCSource(voc, "test")], names)
    coco_test = DetectionDataset([COCOSource(coco_file, voc / "JPEGImages")], names)
    for a, b in zip(voc_test.annotations, coco_test.annotations):
        np.testing.assert_allclose(a.boxes(), b.boxes())
        assert a.labels().tolist() == b.labels().tolist() and a.difficult().tolist() == b.difficult().tolist()


def test_coco_train_and_eval_round_trip(tmp_path: Path, capsys) -> None:
    data = tmp_path / "synth"
    assert synth_cli.main(["--out", str(data), "--train", "12", "--test", "6", "--seed", "4", "--min-side", "80",
                           "--max-side", "120", "--coco", "--no-progress"]) == 0
    for split in ("train", "val", "trainval", "test"):
        assert (data / "annotations" / f"instances_{split}.json").is_file()
    cfg = tiny_config(tmp_path, {
        "data.train_sets": f"[coco:{data}/annotations/instances_trainval.json:{data}/JPEGImages]",
        "data.test_sets": f"[coco:{data}/annotations/instances_test.json:{data}/JPEGImages]",
        "train.epochs": 1, "eval.max_images": 0,
    })
    config = tmp_path / "coco.yaml"
    save_config(cfg, config)
    run_dir = tmp_path / "run"
    code = train_cli.main(["--config", str(config), "--run-dir", str(run_dir), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "mAP VOC2007 11-point" in captured.err
    code = eval_cli.main(["--weights", str(run_dir / "weights" / "last.pt"), "--coco", "--no-progress",
                          "--json", str(tmp_path / "m.json")])
    out = capsys.readouterr().out
    assert code == 0
    assert "instances_test.json's own ids" in out and "mAP VOC2007 11-point" in out and "images evaluated: 6" in out
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert 0.0 <= metrics["coco"]["map_coco"] <= 1.0 and 0.0 <= metrics["map_voc07"] <= 1.0
    assert set(metrics["coco"]["ap_coco"]) <= set((data / "classes.txt").read_text().split())
