"""Tests of the synthetic VOC-format dataset generator (spyolo.data.synthetic)."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from spyolo.data.synthetic import (
    SYNTHETIC_CLASSES,
    SplitStatistics,
    SyntheticObject,
    SyntheticSpec,
    annotation_xml,
    generate_synthetic_voc,
    render_synthetic_image,
    split_statistics,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
N_TRAIN, N_TEST, SEED = 20, 10, 3
MIN_SIDE, MAX_SIDE = 300, 500


def _read_ids(root: Path, split: str) -> list[str]:
    return (root / "ImageSets" / "Main" / f"{split}.txt").read_text().split()


def _parse(root: Path, image_id: str) -> ET.Element:
    return ET.parse(root / "Annotations" / f"{image_id}.xml").getroot()


def _boxes(annotation: ET.Element) -> list[tuple[str, tuple[int, ...], int, int]]:
    out = []
    for obj in annotation.iter("object"):
        box = obj.find("bndbox")
        assert box is not None
        coords = tuple(int(box.findtext(tag)) for tag in ("xmin", "ymin", "xmax", "ymax"))
        out.append((obj.findtext("name"), coords, int(obj.findtext("truncated")),
                    int(obj.findtext("difficult"))))
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "VOCsynth"
    result = generate_synthetic_voc(out, N_TRAIN, N_TEST, SEED, progress=False)
    assert result == out
    return out


@pytest.fixture(scope="module")
def all_ids(dataset: Path) -> list[str]:
    return _read_ids(dataset, "trainval") + _read_ids(dataset, "test")


def test_same_seed_is_identical_even_in_parallel(dataset: Path, all_ids: list[str],
                                                 tmp_path: Path) -> None:
    again = generate_synthetic_voc(tmp_path / "again", N_TRAIN, N_TEST, SEED, workers=2,
                                   progress=False)
    for image_id in all_ids:
        assert ((dataset / "Annotations" / f"{image_id}.xml").read_bytes()
                == (again / "Annotations" / f"{image_id}.xml").read_bytes())
        first = cv2.imread(str(dataset / "JPEGImages" / f"{image_id}.jpg"))
        second = cv2.imread(str(again / "JPEGImages" / f"{image_id}.jpg"))
        assert first is not None and second is not None
        assert np.array_equal(first, second)
    for split in ("train", "val", "trainval", "test"):
        assert _read_ids(dataset, split) == _read_ids(again, split)


def test_different_seed_differs(dataset: Path, tmp_path: Path) -> None:
    other = generate_synthetic_voc(tmp_path / "other", 4, 0, SEED + 1, progress=False)
    for image_id in ("000001", "000002", "000003", "000004"):
        assert ((dataset / "Annotations" / f"{image_id}.xml").read_bytes()
                != (other / "Annotations" / f"{image_id}.xml").read_bytes())


def test_layout_and_splits(dataset: Path, all_ids: list[str]) -> None:
    assert (dataset / "classes.txt").read_text().splitlines() == list(SYNTHETIC_CLASSES)
    train, val = _read_ids(dataset, "train"), _read_ids(dataset, "val")
    trainval, test = _read_ids(dataset, "trainval"), _read_ids(dataset, "test")
    assert trainval == [f"{i:06d}" for i in range(1, N_TRAIN + 1)]
    assert test == [f"{i:06d}" for i in range(N_TRAIN + 1, N_TRAIN + N_TEST + 1)]
    assert sorted(train + val) == trainval
    assert not set(train) & set(val)
    assert not set(trainval) & set(test)
    assert len(val) == 3  # round(0.15 * 20)
    assert val == sorted(val) and train == sorted(train)
    assert sorted(p.stem for p in (dataset / "JPEGImages").iterdir()) == all_ids
    assert sorted(p.stem for p in (dataset / "Annotations").iterdir()) == all_ids


def test_annotation_schema_and_boxes(dataset: Path, all_ids: list[str]) -> None:
    widths, heights = set(), set()
    for image_id in all_ids:
        root = _parse(dataset, image_id)
        assert root.tag == "annotation"
        assert root.findtext("folder") == "spyolo-synthetic"
        assert root.findtext("filename") == f"{image_id}.jpg"
        assert root.findtext("source/database") == "spyolo synthetic"
        assert root.findtext("segmented") == "0"
        assert root.findtext("size/depth") == "3"
        width, height = int(root.findtext("size/width")), int(root.findtext("size/height"))
        image = cv2.imread(str(dataset / "JPEGImages" / f"{image_id}.jpg"))
        assert image.shape == (height, width, 3)
        assert MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE
        widths.add(width)
        heights.add(height)
        objects = root.findall("object")
        assert 1 <= len(objects) <= 6
        for obj in objects:
            assert obj.findtext("name") in SYNTHETIC_CLASSES
            assert obj.findtext("pose") == "Unspecified"
            assert obj.findtext("truncated") in ("0", "1")
            assert obj.findtext("difficult") in ("0", "1")
        for _, (x1, y1, x2, y2), _, _ in _boxes(root):
            assert 1 <= x1 <= x2 <= width and 1 <= y1 <= y2 <= height
    assert len(widths) >= 10 and len(heights) >= 10


def test_classes_and_flag_rules(dataset: Path, all_ids: list[str]) -> None:
    names, difficult, truncated = set(), 0, 0
    total = 0
    spec = SyntheticSpec()
    for image_id in all_ids:
        root = _parse(dataset, image_id)
        width, height = int(root.findtext("size/width")), int(root.findtext("size/height"))
        for name, (x1, y1, x2, y2), trunc, diff in _boxes(root):
            names.add(name)
            total += 1
            touches = x1 == 1 or y1 == 1 or x2 == width or y2 == height
            assert trunc == int(touches)
            if min(x2 - x1 + 1, y2 - y1 + 1) < spec.difficult_min_side:
                assert diff == 1
            difficult += diff
            truncated += trunc
    assert len(names) >= 6
    assert 0 < difficult < 0.25 * total
    assert 0 < truncated < 0.4 * total


def test_rendering_matches_files_and_difficult_rule(dataset: Path) -> None:
    spec = SyntheticSpec()
    for index in range(8):
        image_id = f"{index + 1:06d}"
        rendered = render_synthetic_image(SEED, index)
        height, width = rendered.image.shape[:2]
        assert rendered.owner.shape == (height, width)
        expected = annotation_xml(image_id, width, height, rendered.objects)
        assert (dataset / "Annotations" / f"{image_id}.xml").read_bytes() == expected
        for i, obj in enumerate(rendered.objects):
            assert obj.visible_pixels == int((rendered.owner == i).sum())
            assert 0 < obj.visible_pixels <= obj.total_pixels
            assert obj.visible_fraction >= spec.min_visible_keep
            x1, y1, x2, y2 = obj.box
            tiny = min(x2 - x1 + 1, y2 - y1 + 1) < spec.difficult_min_side
            hidden = obj.visible_pixels < spec.difficult_min_visible * obj.total_pixels
            assert obj.difficult == (tiny or hidden)
            # The box contains every visible pixel of the object.
            rows, cols = np.nonzero(rendered.owner == i)
            assert cols.min() + 1 >= x1 and cols.max() + 1 <= x2
            assert rows.min() + 1 >= y1 and rows.max() + 1 <= y2


def test_colour_does_not_separate_classes() -> None:
    features, labels = [], []
    for index in range(60):
        rendered = render_synthetic_image(11, index, min_side=200, max_side=260)
        for i, obj in enumerate(rendered.objects):
            features.append(rendered.image[rendered.owner == i].mean(axis=0))
            labels.append(SYNTHETIC_CLASSES.index(obj.name))
    x = np.asarray(features, np.float64)
    y = np.asarray(labels)
    assert len(y) >= 150 and len(set(y.tolist())) == len(SYNTHETIC_CLASSES)
    # Leave-one-out nearest-centroid classification on mean object colour.
    correct = 0
    for k in range(len(y)):
        keep = np.arange(len(y)) != k
        centroids = np.stack([x[keep & (y == c)].mean(axis=0)
                              for c in range(len(SYNTHETIC_CLASSES))])
        correct += int(np.argmin(np.linalg.norm(centroids - x[k], axis=1)) == y[k])
    chance = 1.0 / len(SYNTHETIC_CLASSES)
    assert correct / len(y) < chance + 0.12
    # The per-class mean colours lie close together compared with the spread in a class.
    centroids = np.stack([x[y == c].mean(axis=0) for c in range(len(SYNTHETIC_CLASSES))])
    within = float(np.mean([x[y == c].std(axis=0).mean() for c in range(len(SYNTHETIC_CLASSES))]))
    assert float(centroids.std(axis=0).mean()) < 0.35 * within


def test_annotation_xml_exact() -> None:
    objects = [SyntheticObject("star", (1, 5, 40, 60), True, False, 900, 800),
               SyntheticObject("ring", (10, 20, 19, 33), False, True, 90, 90)]
    expected = (
        "<annotation>\n\t<folder>spyolo-synthetic</folder>\n\t<filename>000007.jpg</filename>\n"
        "\t<source>\n\t\t<database>spyolo synthetic</database>\n"
        "\t\t<annotation>spyolo synthetic</annotation>\n\t\t<image>synthetic</image>\n"
        "\t</source>\n\t<size>\n\t\t<width>320</width>\n\t\t<height>410</height>\n"
        "\t\t<depth>3</depth>\n\t</size>\n\t<segmented>0</segmented>\n"
        "\t<object>\n\t\t<name>star</name>\n\t\t<pose>Unspecified</pose>\n"
        "\t\t<truncated>1</truncated>\n\t\t<difficult>0</difficult>\n\t\t<bndbox>\n"
        "\t\t\t<xmin>1</xmin>\n\t\t\t<ymin>5</ymin>\n\t\t\t<xmax>40</xmax>\n"
        "\t\t\t<ymax>60</ymax>\n\t\t</bndbox>\n\t</object>\n"
        "\t<object>\n\t\t<name>ring</name>\n\t\t<pose>Unspecified</pose>\n"
        "\t\t<truncated>0</truncated>\n\t\t<difficult>1</difficult>\n\t\t<bndbox>\n"
        "\t\t\t<xmin>10</xmin>\n\t\t\t<ymin>20</ymin>\n\t\t\t<xmax>19</xmax>\n"
        "\t\t\t<ymax>33</ymax>\n\t\t</bndbox>\n\t</object>\n</annotation>\n"
    )
    assert annotation_xml("000007", 320, 410, objects).decode("utf-8") == expected
    assert objects[0].visible_fraction == pytest.approx(800 / 900)


def test_split_statistics_hand_counted(tmp_path: Path) -> None:
    main = tmp_path / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (tmp_path / "Annotations").mkdir()
    star = SyntheticObject("star", (1, 5, 40, 60), True, False, 900, 800)
    ring = SyntheticObject("ring", (10, 20, 19, 33), False, True, 90, 90)
    cross = SyntheticObject("cross", (50, 60, 90, 99), True, True, 500, 100)
    for image_id, objects in (("a", [star, ring]), ("b", [cross]), ("c", [])):
        (tmp_path / "Annotations" / f"{image_id}.xml").write_bytes(
            annotation_xml(image_id, 320, 410, objects))
    for split, ids in (("train", "a"), ("val", "b"), ("trainval", "a b"), ("test", "c")):
        (main / f"{split}.txt").write_text(ids.replace(" ", "\n") + "\n")
    assert split_statistics(tmp_path) == {
        "train": SplitStatistics(1, 2, 1, 1),
        "val": SplitStatistics(1, 1, 1, 1),
        "trainval": SplitStatistics(2, 3, 2, 2),
        "test": SplitStatistics(1, 0, 0, 0),
    }


def test_class_subset(tmp_path: Path) -> None:
    out = generate_synthetic_voc(tmp_path / "sub", 6, 0, 5, classes=["circle", "star"],
                                 progress=False)
    assert (out / "classes.txt").read_text() == "circle\nstar\n"
    seen = {name for image_id in _read_ids(out, "trainval")
            for name, _, _, _ in _boxes(_parse(out, image_id))}
    assert seen == {"circle", "star"}


def test_invalid_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown synthetic classes"):
        generate_synthetic_voc(tmp_path / "a", 2, 0, classes=["dog"], progress=False)
    with pytest.raises(ValueError, match="min_side"):
        generate_synthetic_voc(tmp_path / "b", 2, 0, min_side=400, max_side=300,
                               progress=False)
    with pytest.raises(ValueError, match="at least one image"):
        generate_synthetic_voc(tmp_path / "c", 0, 0, progress=False)
    with pytest.raises(ValueError, match="objects_per_image"):
        SyntheticSpec(objects_per_image=(3, 2))
    with pytest.raises(ValueError, match="truncation_prob"):
        SyntheticSpec(truncation_prob=1.5)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("keep me")
    (busy / "JPEGImages").mkdir()
    (busy / "JPEGImages" / "mine.jpg").write_bytes(b"a user's image")
    # A folder of someone else's data is refused, with or without overwrite, and left as it was.
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="holds data spyolo did not generate"):
            generate_synthetic_voc(busy, 2, 0, progress=False, overwrite=overwrite)
    assert (busy / "JPEGImages" / "mine.jpg").read_bytes() == b"a user's image"
    assert sorted(p.name for p in busy.iterdir()) == ["JPEGImages", "notes.txt"]
    # A folder this generator wrote is regenerated only with overwrite; other files in it stay.
    ours = tmp_path / "ours"
    generate_synthetic_voc(ours, 3, 0, progress=False)
    (ours / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        generate_synthetic_voc(ours, 2, 0, progress=False)
    generate_synthetic_voc(ours, 2, 0, progress=False, overwrite=True)
    assert (ours / "notes.txt").read_text() == "keep me"
    assert _read_ids(ours, "trainval") == ["000001", "000002"]
    assert not (ours / "JPEGImages" / "000003.jpg").exists()


def test_spec_controls_difficulty() -> None:
    easy = SyntheticSpec(objects_per_image=(2, 2), truncation_prob=0.0, distractors=(0, 0),
                         min_object_size=40.0)
    for index in range(5):
        rendered = render_synthetic_image(0, index, spec=easy)
        assert len(rendered.objects) == 2
        assert not any(obj.truncated for obj in rendered.objects)
        assert (rendered.owner == -2).sum() == 0  # no distractor drawn above objects


def test_command_line_tool(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "make_synthetic_voc.py"), "--out", str(out),
         "--train", "3", "--test", "2", "--seed", "1", "--no-progress"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    assert f"wrote 5 images to {out.resolve()}" in completed.stdout
    stats = split_statistics(out)
    lines = completed.stdout.splitlines()
    for split in ("train", "val", "trainval", "test"):
        row = next(line for line in lines if line.split()[0] == split)
        s = stats[split]
        assert row.split()[1:] == [str(s.images), str(s.objects), str(s.difficult),
                                   str(s.truncated)]
    assert stats["trainval"].images == 3 and stats["test"].images == 2
    failed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "make_synthetic_voc.py"), "--out", str(out),
         "--train", "3", "--test", "2", "--no-progress"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False)
    assert failed.returncode == 2 and "not empty" in failed.stderr and "--overwrite" in failed.stderr
