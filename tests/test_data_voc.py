"""VOC annotation parsing, class/set specs, and the DetectionDataset on VOC folders (errors, skipping, targets)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from spyolo.data.dataset import DetectionDataset
from spyolo.data.transforms import build_eval_transform, letterbox_params
from spyolo.data.voc import (
    VOC_CLASSES,
    DatasetError,
    VOCSource,
    continuous_to_voc,
    parse_voc_xml,
    voc_to_continuous,
)
from spyolo.datasets.kinds import class_names, parse_entries


def load_class_names(classes_file, sources):
    """The run's class list for these VOC sources (spyolo.datasets.kinds.class_names)."""
    return class_names(classes_file, parse_entries([f"{s.year_dir}:{s.split}" for s in sources], "/"))


def parse_sets(entries, root):
    return [entry.source for entry in parse_entries(entries, root)]

# Solid colour of every test JPEG, in OpenCV's BGR order: RGB (0, 128, 255).
BGR = (255, 128, 0)


def xml_text(width: int, height: int, objects: list[tuple[str, tuple, int]], size: bool = True) -> str:
    """A VOC XML with objects (name, (xmin, ymin, xmax, ymax), difficult)."""
    objs = "".join(
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>{difficult}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, b, difficult in objects
    )
    size_xml = f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>" if size else ""
    return f"<annotation><folder>VOC</folder><filename>x.jpg</filename>{size_xml}{objs}</annotation>"


def add_sample(year: Path, image_id: str, w: int = 40, h: int = 30, objects=None, image: bool = True) -> None:
    (year / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (year / "Annotations").mkdir(parents=True, exist_ok=True)
    if objects is None:
        objects = [("dog", (11, 6, 30, 25), 0)]
    if image:
        cv2.imwrite(str(year / "JPEGImages" / f"{image_id}.jpg"), np.full((h, w, 3), BGR, np.uint8))
    (year / "Annotations" / f"{image_id}.xml").write_text(xml_text(w, h, objects))


def write_split(year: Path, split: str, ids: list[str]) -> None:
    (year / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    (year / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n\n")


@pytest.fixture
def voc(tmp_path: Path) -> Path:
    """A valid year folder with three samples in split 'train'."""
    year = tmp_path / "VOC2007"
    add_sample(year, "000001", objects=[("dog", (11, 6, 30, 25), 0), ("person", (1, 1, 40, 30), 1)])
    add_sample(year, "000002", objects=[("cat", (2, 3, 12, 13), 0)])
    add_sample(year, "000003", objects=[])
    write_split(year, "train", ["000001", "000002", " 000003 "])
    return year


# ------------------------------------------------------------------ parsing


def test_parse_xml_empty_tags_and_float_coordinates(tmp_path: Path) -> None:
    path = tmp_path / "000123.xml"
    path.write_text(
        """<annotation>
          <filename>000123.jpg</filename>
          <size><width>353</width><height>500</height><depth>3</depth></size>
          <object><name>dog</name><truncated></truncated><difficult/>
            <bndbox><xmin>48.0</xmin><ymin>240</ymin><xmax>195.5</xmax><ymax>371</ymax></bndbox></object>
          <object><name> person </name><truncated>1</truncated><difficult>1</difficult>
            <bndbox><xmin>8</xmin><ymin>12</ymin><xmax>352</xmax><ymax>498</ymax></bndbox></object>
        </annotation>"""
    )
    ann = parse_voc_xml(path, VOC_CLASSES)
    assert (ann.image_id, ann.filename, ann.width, ann.height, ann.depth) == ("000123", "000123.jpg", 353, 500, 3)
    dog, person = ann.objects
    assert (dog.name, dog.label, dog.box, dog.difficult, dog.truncated) == (
        "dog", 11, (48.0, 240.0, 195.5, 371.0), False, False
    )
    assert (person.name, person.label, person.difficult, person.truncated) == ("person", 14, True, True)
    assert ann.boxes().dtype == np.float32 and ann.boxes().shape == (2, 4)
    np.testing.assert_array_equal(ann.boxes()[1], [8, 12, 352, 498])
    assert ann.labels().dtype == np.int64 and ann.labels().tolist() == [11, 14]
    assert ann.difficult().tolist() == [False, True]


def test_voc_classes_standard_order() -> None:
    assert len(VOC_CLASSES) == 20
    assert VOC_CLASSES[0] == "aeroplane" and VOC_CLASSES[14] == "person" and VOC_CLASSES[19] == "tvmonitor"


def test_coordinate_conversion_roundtrip() -> None:
    voc_boxes = np.array([[1, 1, 10, 20], [5.5, 2, 5.5, 2]], np.float32)
    cont = voc_to_continuous(voc_boxes)
    np.testing.assert_array_equal(cont, [[0, 0, 10, 20], [4.5, 1, 5.5, 2]])
    np.testing.assert_array_equal(continuous_to_voc(cont), voc_boxes)
    assert voc_boxes[0, 0] == 1  # inputs are not modified


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("<annotation><size><width>10</width>", "malformed XML"),
        ("<annotation><object/></annotation>", "missing <size>"),
        ("<annotation><size><width>10</width></size></annotation>", "missing <height>"),
        (xml_text(40, 30, [("unicorn", (1, 1, 5, 5), 0)]), "unknown class 'unicorn'"),
        (xml_text(40, 30, [("dog", (1, 1, 5, 5), 0), ("dog", (57.0, 1, 40.0, 5), 0)]),
         "object 2 has xmax (40.0) < xmin (57.0)"),
        (xml_text(40, 30, [("dog", (1, 9, 5, 8), 0)]), "object 1 has ymax (8.0) < ymin (9.0)"),
        (xml_text(40, 30, [("dog", (0, 1, 5, 5), 0)]), "outside the image"),
        (xml_text(40, 30, [("dog", (1, 1, 41, 5), 0)]), "outside the image"),
        (xml_text(40, 30, [("dog", (1, 1, 5, 30.5), 0)]), "outside the image"),
        (xml_text(40, 30, [("dog", (1, "a1", 5, 5), 0)]), "non-numeric <ymin> ('a1')"),
        (xml_text(40, 30, [("dog", (1, "", 5, 5), 0)]), "missing <ymin>"),
        (
            "<annotation><size><width>4</width><height>4</height></size><object><name>dog</name></object></annotation>",
            "has no <bndbox>",
        ),
    ],
)
def test_parse_errors_name_the_file(tmp_path: Path, body: str, problem: str) -> None:
    path = tmp_path / "000123.xml"
    path.write_text(body)
    with pytest.raises(DatasetError) as info:
        parse_voc_xml(path, VOC_CLASSES)
    assert str(path) in str(info.value)
    assert problem in str(info.value)


def test_unknown_class_message_explains_classes_txt(tmp_path: Path) -> None:
    path = tmp_path / "a.xml"
    path.write_text(xml_text(40, 30, [("unicorn", (1, 1, 5, 5), 0)]))
    message = str(pytest.raises(DatasetError, parse_voc_xml, path, ["dog", "cat"]).value)
    assert "dog, cat" in message and "classes.txt" in message


def test_box_on_the_image_border_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "a.xml"
    path.write_text(xml_text(40, 30, [("dog", (1, 1, 40, 30), 0), ("cat", (7, 7, 7, 7), 0)]))
    ann = parse_voc_xml(path, VOC_CLASSES)
    np.testing.assert_array_equal(voc_to_continuous(ann.boxes()), [[0, 0, 40, 30], [6, 6, 7, 7]])


# ----------------------------------------------------------- classes & sets


def test_load_class_names(tmp_path: Path) -> None:
    year = tmp_path / "Y"
    year.mkdir()
    sets = [VOCSource(year, "train")]
    assert load_class_names(None, sets) == list(VOC_CLASSES)
    (year / "classes.txt").write_text("apple\n\n banana \n")
    assert load_class_names(None, [VOCSource(tmp_path / "missing", "train"), *sets]) == ["apple", "banana"]
    given = tmp_path / "mine.txt"
    given.write_text("a\nb\nc\n")
    assert load_class_names(given, sets) == ["a", "b", "c"]
    given.write_text("a\nb\na\n")
    with pytest.raises(DatasetError, match=re.escape(f"{given}: class 'a' is listed more than once")):
        load_class_names(given, sets)
    with pytest.raises(DatasetError, match="nope.txt: classes file not found"):
        load_class_names(tmp_path / "nope.txt", sets)


def test_parse_sets(tmp_path: Path) -> None:
    root = tmp_path / "VOCdevkit"
    assert parse_sets("VOC2007:trainval, VOC2012:trainval", root) == [
        (root / "VOC2007", "trainval"),
        (root / "VOC2012", "trainval"),
    ]
    absolute = tmp_path / "elsewhere" / "VOC2007"
    assert parse_sets([f"{absolute}:test"], root) == [(absolute, "test")]
    with pytest.raises(DatasetError, match=r"bad set entry 'VOC2007': expected 'YEAR_FOLDER:SPLIT'"):
        parse_sets(["VOC2007"], root)
    with pytest.raises(DatasetError, match="no sets given"):
        parse_sets("", root)


# ------------------------------------------------------------------ dataset


def test_dataset_reads_items_and_targets(voc: Path) -> None:
    ds = DetectionDataset([(voc, "train")], VOC_CLASSES)
    assert len(ds) == 3
    assert ds.image_paths == [voc / "JPEGImages" / f"00000{i}.jpg" for i in (1, 2, 3)]
    image, target, meta = ds[0]
    assert image.dtype == torch.float32 and image.shape == (3, 30, 40)
    # RGB order and /255: the JPEG is a solid RGB (0, 128, 255).
    np.testing.assert_allclose(image[:, 15, 20].numpy() * 255, [0, 128, 255], atol=4)
    # Difficult "person" dropped; dog VOC (11, 6, 30, 25) -> continuous (10, 5, 30, 25) in a 40x30 image.
    torch.testing.assert_close(target, torch.tensor([[11, 0.5, 0.5, 0.5, 20 / 30]]))
    assert meta == {"index": 0, "image_id": "000001", "orig_size": (30, 40), "letterbox": None}
    assert ds[2][1].shape == (0, 5)


def test_difficult_kept_only_when_asked_but_always_in_annotation(voc: Path) -> None:
    ds = DetectionDataset([(voc, "train")], VOC_CLASSES)
    kept = DetectionDataset([(voc, "train")], VOC_CLASSES, keep_difficult=True)
    assert ds[0][1][:, 0].tolist() == [11]
    assert kept[0][1][:, 0].tolist() == [11, 14]
    torch.testing.assert_close(kept[0][1][1], torch.tensor([14, 0.5, 0.5, 1.0, 1.0]))
    for d in (ds, kept):
        ann = d.get_annotation(0)
        assert [o.name for o in ann.objects] == ["dog", "person"]
        assert ann.difficult().tolist() == [False, True]


def test_grayscale_image_gives_three_channels(voc: Path) -> None:
    cv2.imwrite(str(voc / "JPEGImages" / "000002.jpg"), np.full((30, 40), 200, np.uint8))
    ds = DetectionDataset([(voc, "train")], VOC_CLASSES)
    image = ds.load_image(1)
    assert image.shape == (30, 40, 3) and image.dtype == np.uint8
    assert abs(int(image[10, 10, 0]) - 200) <= 2 and image[10, 10, 0] == image[10, 10, 2]


def test_letterbox_meta(voc: Path) -> None:
    ds = DetectionDataset([(voc, "train")], VOC_CLASSES, transform=build_eval_transform(64, "letterbox"))
    image, target, meta = ds[0]
    assert image.shape == (3, 64, 64)
    assert meta["letterbox"] == letterbox_params(30, 40, 64) == (1.6, 0, 8)
    # dog continuous (10, 5, 30, 25) -> x * 1.6, y * 1.6 + 8 -> (16, 16, 48, 48) in 64x64.
    torch.testing.assert_close(target, torch.tensor([[11, 0.5, 0.5, 0.5, 0.5]]))


def _expect_error(sets, fragment: str, **kwargs) -> None:
    with pytest.raises(DatasetError) as info:
        DetectionDataset(sets, VOC_CLASSES, **kwargs)
    assert fragment in str(info.value), str(info.value)


def test_missing_folders_and_split(voc: Path, tmp_path: Path) -> None:
    _expect_error([(tmp_path / "VOC2099", "train")], "VOC2099: dataset folder not found")
    _expect_error([(voc, "val")], str(voc / "ImageSets" / "Main" / "val.txt") + ": split file not found")
    (voc / "Annotations").rename(voc / "Ann")
    _expect_error([(voc, "train")], str(voc / "Annotations") + ": folder not found")


def test_empty_split_file(voc: Path) -> None:
    write_split(voc, "empty", [])
    _expect_error([(voc, "empty")], "empty.txt: split file lists no image ids")


def test_id_without_jpeg_or_xml(voc: Path) -> None:
    (voc / "JPEGImages" / "000002.jpg").unlink()
    _expect_error([(voc, "train")], str(voc / "JPEGImages" / "000002.jpg") + ": image file not found")
    add_sample(voc, "000002")
    (voc / "Annotations" / "000003.xml").unlink()
    _expect_error([(voc, "train")], str(voc / "Annotations" / "000003.xml") + ": annotation file not found")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("<annotation><size>", "malformed XML"),
        (xml_text(40, 30, [("zebra", (1, 1, 5, 5), 0)]), "unknown class 'zebra'"),
        (xml_text(40, 30, [("dog", (20, 1, 5, 5), 0)]), "object 1 has xmax (5.0) < xmin (20.0)"),
        (xml_text(40, 30, [("dog", (1, 1, 5, 31), 0)]), "outside the image"),
    ],
)
def test_bad_annotation_in_dataset(voc: Path, body: str, fragment: str) -> None:
    xml = voc / "Annotations" / "000002.xml"
    xml.write_text(body)
    _expect_error([(voc, "train")], f"{xml}: ")
    _expect_error([(voc, "train")], fragment)


def test_corrupt_image(voc: Path) -> None:
    jpg = voc / "JPEGImages" / "000002.jpg"
    jpg.write_bytes(b"\x00garbage, not a JPEG" * 10)
    for verify in (False, True):  # found at start-up, with or without decoding every image
        _expect_error([(voc, "train")], f"{jpg}: cannot decode image", verify_images=verify)
    _expect_error([(voc, "train")], "(1 of 3 samples is bad; data.skip_bad=true leaves them out")


def test_image_changed_after_the_start_is_named_when_read(voc: Path) -> None:
    ds = DetectionDataset([(voc, "train")], VOC_CLASSES)
    jpg = voc / "JPEGImages" / "000002.jpg"
    jpg.write_bytes(b"\x00garbage, not a JPEG" * 10)
    with pytest.raises(DatasetError, match=re.escape(f"{jpg}: cannot decode image")):
        ds[1]


def test_image_size_differs_from_xml(voc: Path) -> None:
    jpg = voc / "JPEGImages" / "000002.jpg"
    cv2.imwrite(str(jpg), np.zeros((31, 40, 3), np.uint8))
    for verify in (False, True):  # the header's size is compared at start-up
        _expect_error([(voc, "train")], f"{jpg}: image is 40x31 (WxH) but its annotation says 40x30",
                      verify_images=verify)


def test_skip_bad_skips_and_warns(voc: Path, caplog: pytest.LogCaptureFixture) -> None:
    (voc / "JPEGImages" / "000002.jpg").unlink()
    (voc / "Annotations" / "000003.xml").write_text("<annotation>")
    with caplog.at_level(logging.WARNING, logger="spyolo"):
        ds = DetectionDataset([(voc, "train")], VOC_CLASSES, skip_bad=True)
    record = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(record) == 1
    message = record[0].getMessage()
    assert "skipped 2 of 3 samples" in message
    assert "000002.jpg: image file not found" in message and "000003.xml: malformed XML" in message
    assert ds.image_paths == [voc / "JPEGImages" / "000001.jpg"] and len(ds.annotations) == 1
    assert [p for p, _ in ds.skipped] == [
        str(voc / "JPEGImages" / "000002.jpg"), str(voc / "Annotations" / "000003.xml")
    ]


def test_skip_bad_lists_at_most_twenty(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    year = tmp_path / "V"
    add_sample(year, "good")
    bad = [f"b{i:02d}" for i in range(23)]
    for image_id in bad:
        add_sample(year, image_id, image=False)
    write_split(year, "train", ["good", *bad])
    with caplog.at_level(logging.WARNING, logger="spyolo"):
        ds = DetectionDataset([(year, "train")], VOC_CLASSES, skip_bad=True)
    message = caplog.records[-1].getMessage()
    assert "skipped 23 of 24 samples" in message
    assert "b19.jpg" in message and "b20.jpg" not in message and message.endswith("... and 3 more")
    assert len(ds) == 1 and len(ds.skipped) == 23


def test_skip_bad_with_nothing_left_raises(voc: Path) -> None:
    for image_id in ("000001", "000002", "000003"):
        (voc / "JPEGImages" / f"{image_id}.jpg").unlink()
    _expect_error([(voc, "train")], "no usable samples left", skip_bad=True)


def test_mosaic_needs_a_train_transform(voc: Path) -> None:
    with pytest.raises(ValueError, match="mosaic_prob > 0 needs a training transform"):
        DetectionDataset([(voc, "train")], VOC_CLASSES, transform=build_eval_transform(64), mosaic_prob=0.5)
