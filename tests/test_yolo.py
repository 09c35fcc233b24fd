"""The YOLO layout: ultralytics' data.yaml and Darknet's obj.data, their labels and errors, and the same
images read the same way (boxes, training, evaluation) from the YOLO and the VOC layout."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import save_tiny_checkpoint, tiny_config
from spyolo.cli import demo as demo_cli
from spyolo.cli import eval as eval_cli
from spyolo.cli import synth as synth_cli
from spyolo.cli import train as train_cli
from spyolo.config import ConfigError, apply_overrides, save_config
from spyolo.data.dataset import DetectionDataset
from spyolo.data.yolo import label_path, read_yolo_data
from spyolo.datasets import build_dataset, class_names, parse_entries
from spyolo.errors import DatasetError


def _image(path: Path, w: int = 40, h: int = 30) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 90, np.uint8))
    return path


def _label(image: Path, lines: list[str], layout: str = "ultralytics") -> Path:
    path = label_path(image, layout)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def _dataset(entry: str, root: Path, **kwargs) -> DetectionDataset:
    entries = parse_entries([entry], root)
    return DetectionDataset([e.source for e in entries], class_names(None, entries), **kwargs)


def _boxes(ds: DetectionDataset) -> list[list[tuple]]:
    return [[(o.label, o.box) for o in ann.objects] for ann in ds.annotations]


# ------------------------------------------------------------------------------ layouts


def test_ultralytics_data_yaml(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ds_dir = tmp_path / "pets"
    a = _image(ds_dir / "images" / "train" / "a.jpg")
    b = _image(ds_dir / "images" / "train" / "sub" / "b.png", 20, 10)
    c = _image(ds_dir / "images" / "train" / "c.jpg")
    _label(a, ["1 0.5 0.5 0.5 0.6666666667", "0 0.25 0.25 0.1 0.2", "1 0.5 0.5 0.5 0.6666666667"])
    _label(b, ["0 0.5 0.5 1 1"])  # c.jpg has no label file: an image without objects
    (ds_dir / "data.yaml").write_text("path: .\ntrain: images/train\nnc: 2\nnames: {0: cat, 1: dog}\n")
    with caplog.at_level(logging.INFO, logger="spyolo"):
        ds = _dataset("yolo:pets/data.yaml:train", tmp_path)
    assert ds.class_names == ["cat", "dog"] and ds.image_paths == [a, c, b]  # sorted by path, recursively
    # dog: cx 0.5 w 0.5 of 40 px -> continuous x 10..30; cy 0.5 h 2/3 of 30 px -> y 5..25: VOC (11, 6, 30, 25)
    assert _boxes(ds) == [[(1, (11.0, 6.0, 30.0, 25.0)), (0, (9.0, 5.5, 12.0, 10.5))], [],
                          [(0, (1.0, 1.0, 20.0, 10.0))]]
    assert ds.get_annotation(0).image_id == "a" and ds.get_annotation(2).width == 20
    assert "1 of 3 images have no label file (read as images without objects)" in caplog.text
    assert "1 repeated label lines dropped" in caplog.text
    image, target, meta = ds[0]
    assert target.shape == (2, 5) and meta["orig_size"] == (30, 40)


def test_roboflow_paths_lists_and_list_files(tmp_path: Path) -> None:
    root = tmp_path / "export"
    for split in ("train", "valid"):
        _label(_image(root / split / "images" / f"{split}1.jpg"), ["0 0.5 0.5 0.5 0.5"])
    extra = _image(tmp_path / "elsewhere" / "images" / "x.jpg")
    _label(extra, ["0 0.5 0.5 0.2 0.2"])
    (root / "more.txt").write_text(f"./valid/images/valid1.jpg\n\n{extra}\n")
    # Roboflow writes ../train/images beside data.yaml: read as train/images when ../ does not exist
    (root / "data.yaml").write_text("train: ../train/images\nval: [../valid/images, more.txt]\nnames: [thing]\n")
    assert len(_dataset("yolo:export/data.yaml:train", tmp_path)) == 1
    val = _dataset("yolo:export/data.yaml:val", tmp_path)
    assert [p.name for p in val.image_paths] == ["valid1.jpg", "valid1.jpg", "x.jpg"]


def test_darknet_obj_data(tmp_path: Path) -> None:
    root = tmp_path / "darknet"
    (root / "data").mkdir(parents=True)
    one = _image(root / "data" / "obj" / "1.jpg")
    _label(one, ["1 0.5 0.5 0.5 0.5"], "darknet")
    assert (root / "data" / "obj" / "1.txt").is_file()  # Darknet: beside the image
    voc_style = _image(root / "VOC" / "JPEGImages" / "2.jpg")
    _label(voc_style, ["0 0.5 0.5 0.25 0.25"], "darknet")
    assert (root / "VOC" / "labels" / "2.txt").is_file()  # ... or under labels/ for JPEGImages/
    (root / "data" / "obj.names").write_text("car\nbike\n")
    (root / "data" / "train.txt").write_text(f"data/obj/1.jpg\n{voc_style}\n")
    (root / "data" / "obj.data").write_text("classes = 2\ntrain = data/train.txt\nvalid = data/train.txt\n"
                                            "names = data/obj.names  # the classes\nbackup = backup/\n")
    ds = _dataset("yolo:darknet/data/obj.data:train", tmp_path)
    assert ds.class_names == ["car", "bike"] and _boxes(ds) == [[(1, (11.0, 8.5, 30.0, 22.5))],
                                                                [(0, (16.0, 12.25, 25.0, 18.75))]]
    assert read_yolo_data(root / "data" / "obj.data").splits == {"train": ["data/train.txt"],
                                                                 "valid": ["data/train.txt"]}


# ------------------------------------------------------------------------------ bad input


@pytest.fixture
def one_image(tmp_path: Path) -> tuple[Path, Path]:
    """A two-class data.yaml over two images; returns (data root, the first image's label file)."""
    ds_dir = tmp_path / "d"
    first = _image(ds_dir / "images" / "a.jpg")
    _label(_image(ds_dir / "images" / "b.jpg"), ["0 0.5 0.5 0.2 0.2"])
    (ds_dir / "data.yaml").write_text("train: images\nnames: [cat, dog]\n")
    return tmp_path, label_path(first)


@pytest.mark.parametrize(("line", "needle"), [
    ("2 0.5 0.5 0.1 0.1", "class 2 is not a class index 0..1 (the data file names 2 classes)"),
    ("1.5 0.5 0.5 0.1 0.1", "class 1.5 is not a class index"),
    ("-1 0.5 0.5 0.1 0.1", "class -1 is not a class index"),
    ("0 0.5 0.5 0.1", "4 columns, expected 5 (class cx cy w h)"),
    ("0 0.1 0.1 0.2 0.1 0.3 0.3", "7 columns, expected 5 (class cx cy w h) (a polygon"),
    ("0 0.5 abc 0.1 0.1", "cy 'abc' is not a number"),
    ("zero 0.5 0.5 0.1 0.1", "class 'zero' is not a number"),
    ("0 0.5 0.5 nan 0.1", "w 'nan' is not finite"),
    ("0 0.9 0.5 0.4 0.1", "the box (cx 0.9, cy 0.5, w 0.4, h 0.1) reaches outside the image (its edges must lie in "
                          "[0, 1]; the image is 40x30)"),
    ("0 0.5 0.5 0 0.1", "the box has no area"),
    ("0 0.5 0.5 0.1 -0.1", "the box has no area"),
])
def test_bad_label_lines_name_the_file_and_line(one_image: tuple[Path, Path], line: str, needle: str,
                                                caplog: pytest.LogCaptureFixture) -> None:
    root, label = one_image
    label.write_text(f"0 0.5 0.5 0.2 0.2\n{line}\n")
    with pytest.raises(DatasetError) as info:
        _dataset("yolo:d/data.yaml:train", root)
    assert str(info.value).startswith(f"{label}:2: {needle}"), str(info.value)
    assert "(1 of 2 samples is bad; data.skip_bad=true" in str(info.value)
    with caplog.at_level(logging.WARNING, logger="spyolo"):
        ds = _dataset("yolo:d/data.yaml:train", root, skip_bad=True)
    assert len(ds) == 1 and ds.skipped[0][0] == f"{label}:2" and needle in caplog.text


def test_boxes_half_a_pixel_outside_are_clipped(one_image: tuple[Path, Path]) -> None:
    root, label = one_image
    # x -0.2..0.6 px (0.2 px past the left edge); x 39..40.2 and y -0.3..30.3 (past three edges)
    label.write_text("0 0.005 0.5 0.02 0.2\n1 0.99 0.5 0.03 1.02\n")
    ds = _dataset("yolo:d/data.yaml:train", root)
    assert _boxes(ds)[0] == [(0, (1.0, 13.0, 1.0, 18.0)), (1, (40.0, 1.0, 40.0, 30.0))]  # clipped, one pixel wide


def test_a_bad_image_in_a_yolo_set_stops_the_start(one_image: tuple[Path, Path]) -> None:
    root, _label_file = one_image
    image = root / "d" / "images" / "b.jpg"
    image.write_bytes(image.read_bytes()[:-40])
    with pytest.raises(DatasetError, match=f"{image}: truncated JPEG"):
        _dataset("yolo:d/data.yaml:train", root)


@pytest.mark.parametrize(("text", "needle"), [
    ("train: [", "data.yaml: invalid YAML"),
    ("- a\n- b\n", "data.yaml: not a YOLO data file (expected a mapping"),
    ("train: images\n", "data.yaml: no 'names'"),
    ("train: images\nnames: [cat, cat]\n", "names lists class 'cat' more than once"),
    ("train: images\nnames: {1: cat, 2: dog}\n", "names as a mapping must have the class indices 0..1 as keys"),
    ("train: images\nnames: [cat]\nnc: 2\n", "nc is 2 but names lists 1 classes"),
    ("train: images\nnames: cat\n", "names must be a list of class names"),
    ("val: images\nnames: [cat, dog]\n", "data.yaml: no split 'train' (its splits: val)"),
    ("train: nowhere\nnames: [cat, dog]\n", "train path 'nowhere' not found"),
    ("train: 3\nnames: [cat, dog]\n", "no split 'train'"),
    ("train: list.txt\nnames: [cat, dog]\n", "list.txt:1: 'notes.md' is not an image file name"),
    ("path: missing\ntrain: images\nnames: [cat, dog]\n", "path 'missing' is not a folder"),
])
def test_bad_data_files_are_one_line(one_image: tuple[Path, Path], text: str, needle: str) -> None:
    root, _label_file = one_image
    (root / "d" / "data.yaml").write_text(text)
    (root / "d" / "list.txt").write_text("notes.md\n")
    with pytest.raises(DatasetError, match=needle.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        _dataset("yolo:d/data.yaml:train", root)


def test_bad_entries_and_darknet_files(tmp_path: Path, capsys) -> None:
    with pytest.raises(ConfigError, match=r"bad set entry 'yolo:d/data.yaml': expected 'yolo:DATA_FILE:SPLIT'"):
        apply_overrides(tiny_config(tmp_path), ["data.train_sets=[yolo:d/data.yaml]"])
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DatasetError, match="x.json: not a YOLO data file"):
        _dataset("yolo:x.json:train", tmp_path)
    with pytest.raises(DatasetError, match="nope.yaml: YOLO data file not found"):
        _dataset("yolo:nope.yaml:train", tmp_path)
    obj = tmp_path / "obj.data"
    for text, needle in [("train = a.txt\n", "no 'names = FILE'"), ("names = none.names\ntrain = a\n",
                                                                    "names file 'none.names' not found"),
                         ("what is this\n", "obj.data:1: expected 'key = value'")]:
        obj.write_text(text)
        with pytest.raises(DatasetError, match=needle):
            _dataset("yolo:obj.data:train", tmp_path)
    (tmp_path / "obj.names").write_text("a\nb\n")
    obj.write_text("classes = 3\nnames = obj.names\ntrain = a.txt\n")
    with pytest.raises(DatasetError, match="classes = 3 but .*obj.names lists 2 classes"):
        _dataset("yolo:obj.data:train", tmp_path)
    config = tmp_path / "c.yaml"
    save_config(tiny_config(tmp_path), config)
    code = train_cli.main(["--config", str(config), "data.test_sets=[yolo:d/data.yaml]"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: overrides: bad set entry 'yolo:d/data.yaml': expected 'yolo:DATA_FILE:SPLIT'")


# ------------------------------------------------------------------------------ the same images both ways


def test_synth_yolo_gives_the_voc_layouts_images_and_boxes(tmp_path: Path, capsys) -> None:
    common = ["--train", "10", "--test", "4", "--seed", "5", "--min-side", "64", "--max-side", "96", "--no-progress"]
    assert synth_cli.main(["--out", str(tmp_path / "V"), *common]) == 0
    assert synth_cli.main(["--out", str(tmp_path / "Y"), "--yolo", *common]) == 0
    out = capsys.readouterr().out
    assert f"yolo:{tmp_path / 'Y' / 'data.yaml'}:train" in out
    for split in ("train", "val", "test"):
        voc = _dataset(f"V:{split}", tmp_path)
        yolo = _dataset(f"yolo:Y/data.yaml:{split}", tmp_path)
        assert voc.class_names == yolo.class_names and len(voc) == len(yolo) > 0
        assert [p.read_bytes() for p in voc.image_paths] == [p.read_bytes() for p in yolo.image_paths]
        assert _boxes(voc) == _boxes(yolo)  # difficult objects are ordinary boxes in the YOLO layout
    assert synth_cli.main(["--out", str(tmp_path / "Y"), "--yolo", "--coco", *common]) == 2


_TIMING = ("epoch_time_s", "images_per_s", "peak_mem_mib")


def _train(capsys, root: Path, tmp_path: Path, name: str, sets: dict[str, str]) -> tuple[Path, list[dict]]:
    """Train a tiny model on the sets (the synthetic set generated through the config, with no difficult
    objects: the YOLO layout has no flag for them); returns its run folder and results without timings."""
    import csv

    cfg = tiny_config(root, {"train.epochs": 1, "train.max_iters_per_epoch": 2, "eval.max_images": 0,
                             "eval.train_images": 0,
                             "data.synthetic_train": 10, "data.synthetic_test": 4, "data.synthetic_seed": 4,
                             "data.synthetic_min_side": 64, "data.synthetic_max_side": 96,
                             "data.synthetic_spec": "{difficult_min_side: 0, difficult_min_visible: 0.0}", **sets})
    config = tmp_path / f"{name}.yaml"
    save_config(cfg, config)
    run_dir = tmp_path / f"run_{name}"
    assert train_cli.main(["--config", str(config), "--run-dir", str(run_dir), "--no-progress"]) == 0
    with open(run_dir / "results.csv", newline="") as f:
        rows = [{k: v for k, v in row.items() if k not in _TIMING} for row in csv.DictReader(f)]
    return run_dir, rows


def _evaluate(capsys, tmp_path: Path, weights: Path, name: str, *overrides: str) -> dict:
    report = tmp_path / f"{name}.json"
    assert eval_cli.main(["--weights", str(weights), "--coco", "--json", str(report), "--no-progress", "--device",
                          "cpu", "eval.conf_thresh=0.001", *overrides]) == 0
    capsys.readouterr()
    return json.loads(report.read_text())


def test_training_and_evaluation_on_yolo_equal_those_on_voc(tmp_path: Path, capsys) -> None:
    """A new user's YOLO export trains and evaluates with one override of data.train_sets / data.test_sets,
    with the numbers of the same images in the VOC layout."""
    root = tmp_path / "data"
    voc_sets = {"data.train_sets": "[S:train]", "data.test_sets": "[S:test]"}
    yolo_sets = {"data.train_sets": "[yolo:Y/data.yaml:train]", "data.test_sets": "[yolo:Y/data.yaml:test]"}
    voc_run, voc_rows = _train(capsys, root, tmp_path, "voc", voc_sets)
    yolo_run, yolo_rows = _train(capsys, root, tmp_path, "yolo", yolo_sets)
    assert (root / "Y" / "data.yaml").is_file() and (root / "S" / "JPEGImages").is_dir()  # both generated
    assert voc_rows == yolo_rows and float(voc_rows[0]["loss"]) > 0  # losses and test mAP of every epoch
    assert (voc_run / "weights" / "last.pt").is_file() and (yolo_run / "weights" / "last.pt").is_file()
    # spyolo eval --coco of a model whose boxes, matched loosely (IoU 0.05), score above 0, on both layouts
    metrics = ("map_voc07", "map_area", "ap_voc07", "ap_area")
    names = (root / "S" / "classes.txt").read_text().split()
    weights = save_tiny_checkpoint(tmp_path / "boxes.pt", tiny_config(root, voc_sets), names)
    voc = _evaluate(capsys, tmp_path, weights, "voc_boxes", f"data.root={root}", "eval.iou_threshold=0.05")
    yolo = _evaluate(capsys, tmp_path, weights, "yolo_boxes", f"data.root={root}", "eval.iou_threshold=0.05",
                     "data.train_sets=[yolo:Y/data.yaml:train]", "data.test_sets=[yolo:Y/data.yaml:test]")
    assert voc["map_area"] > 0
    assert [voc[k] for k in metrics] == [yolo[k] for k in metrics] and voc["coco"] == yolo["coco"]


def test_demo_on_a_yolo_entry(tmp_path: Path, capsys) -> None:
    common = ["--train", "4", "--test", "3", "--seed", "1", "--min-side", "64", "--max-side", "80", "--no-progress"]
    assert synth_cli.main(["--out", str(tmp_path / "Y"), "--yolo", *common]) == 0
    cfg = tiny_config(tmp_path)
    weights = save_tiny_checkpoint(tmp_path / "m.pt", cfg, ["a", "b"])
    out = tmp_path / "demo"
    code = demo_cli.main(["--weights", str(weights), "--source", "yolo:Y/data.yaml:test", "--root", str(tmp_path),
                          "--out", str(out), "--max-images", "2", "--no-progress", "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert sorted(p.name for p in out.iterdir()) == ["000005.jpg", "000005.json", "000006.jpg", "000006.json"]
    shutil.rmtree(out)
    code = demo_cli.main(["--weights", str(weights), "--source", "yolo:Y/data.yaml:nope", "--root", str(tmp_path),
                          "--out", str(out), "--no-progress"])
    assert code == 2 and "no split 'nope'" in capsys.readouterr().err and not out.exists()


def test_build_dataset_reads_yolo_entries_of_a_config(tmp_path: Path) -> None:
    common = ["--train", "4", "--test", "2", "--seed", "1", "--min-side", "64", "--max-side", "80", "--no-progress"]
    assert synth_cli.main(["--out", str(tmp_path / "Y"), "--yolo", *common]) == 0
    cfg = tiny_config(tmp_path, {"data.train_sets": "[yolo:Y/data.yaml:train, yolo:Y/data.yaml:val]",
                                 "data.test_sets": "[yolo:Y/data.yaml:test]"})
    train, test = build_dataset(cfg, train=True), build_dataset(cfg, train=False)
    assert (len(train), len(test)) == (4, 2) and train.transform.is_train
    assert train[0][0].shape == (3, 64, 64)
