"""Tests of tools/eval.py (text mode), the text-file reader, the table and the JSON."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from spyolo.eval.report import format_ap_table, write_json
from spyolo.eval.textfiles import evaluator_from_text, load_text_results, read_class_file

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "eval.py"
FIXTURE = (
    Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "sfptt_voc07_test_results.tar.gz"
)

# Hand-made case (classes cat, dog):
#   img1 GT: cat 1..10, dog 20..39.   img2 GT: cat 5..14, cat 30..39 (difficult).
#   img3 has detections but no GT file.
# cat: npos 2. Detections by score:
#   0.95 img3 -> FP (no GT file); 0.90 img1 exact -> TP; 0.70 img2 on the difficult
#   box -> ignored; 0.60 img2 60..70 -> FP.
#   tp [0,1,0,0], fp [1,0,0,1] -> recall [0,.5,.5,.5], precision [0,.5,.5,1/3]
#   11-point: t = 0..0.5 (6 thresholds) at max precision 0.5 -> 3/11 = 27.27%
#   area: envelope 0.5 up to recall 0.5 -> 0.25 = 25.00%
# dog: npos 1; 0.8 exact -> TP, 0.3 elsewhere -> FP -> AP 100% in both metrics.
# mAP 11-point (3/11 + 1) / 2 = 63.64%; area (0.25 + 1) / 2 = 62.50%.
GT_FILES = {
    "img1.txt": "cat 1 1 10 10\ndog 20 20 39 39\n",
    "img2.txt": "cat 5 5 14 14\n\ncat 30 30 39 39 difficult\n",
}
DET_FILES = {
    "img1.txt": "cat 0.9 1 1 10 10\ndog 0.8 20 20 39 39\ndog 0.3 50 50 60 60\n",
    "img2.txt": "cat 0.7 30 30 39 39\ncat 0.6 60 60 70 70\n",
    "img3.txt": "cat 0.95 1 1 5 5\n",
}


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture()
def tiny(tmp_path: Path) -> tuple[Path, Path]:
    return _write(tmp_path / "gt", GT_FILES), _write(tmp_path / "det", DET_FILES)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    return subprocess.run([sys.executable, str(TOOL), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _row(out: str, name: str) -> list[str]:
    for line in out.splitlines():
        if line.split()[:1] == [name]:
            return line.split()
    raise AssertionError(f"no table row for {name!r} in:\n{out}")


def test_cli_table_json_and_plots(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    gt, det = tiny
    js = tmp_path / "res.json"
    plots = tmp_path / "plots"
    # run from an unrelated folder: the tool must find the package by itself
    proc = _run(["--gt-dir", str(gt), "--det-dir", str(det), "--json", str(js),
                 "--plots", str(plots)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # class GT dets TP FP AP11 AParea
    assert _row(out, "cat") == ["cat", "2", "4", "1", "2", "27.27", "25.00"]
    assert _row(out, "dog") == ["dog", "1", "2", "1", "1", "100.00", "100.00"]
    assert re.search(r"^mAP VOC2007 11-point\s*: 63\.64%", out, re.M)
    assert re.search(r"^mAP area \(VOC2010\+\)\s*: 62\.50%", out, re.M)
    assert "1 detections in 1 files" in proc.stderr and "false positives" in proc.stderr

    data = json.loads(js.read_text())
    assert set(data) == {"map_voc07", "map_area", "ap_voc07", "ap_area"}
    assert data["map_voc07"] == pytest.approx((3 / 11 + 1) / 2)
    assert data["map_area"] == pytest.approx(0.625)
    assert data["ap_voc07"] == {"cat": pytest.approx(3 / 11), "dog": 1.0}
    assert data["ap_area"] == {"cat": pytest.approx(0.25), "dog": 1.0}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".res.json")] == []

    pngs = sorted(p.name for p in plots.iterdir())
    assert pngs == ["all_classes_pr.png", "pr_cat.png", "pr_dog.png"]
    for name in pngs:
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_coco_and_class_file(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    gt, det = tiny
    classes = tmp_path / "classes.txt"
    classes.write_text("dog\ncat\nbird\n")
    js = tmp_path / "res.json"
    proc = _run(["--gt-dir", str(gt), "--det-dir", str(det), "--classes", str(classes),
                 "--coco", "--json", str(js)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "classes without ground truth (not in the mAP): bird" in proc.stdout
    assert "COCO-style" in proc.stdout
    data = json.loads(js.read_text())
    assert set(data) == {"map_voc07", "map_area", "ap_voc07", "ap_area", "coco"}
    assert list(data["ap_area"]) == ["dog", "cat"]  # order of the class file
    # dog: the one TP box is exact (IoU 1) and ranked first -> COCO AP 1 for dog
    assert data["coco"]["ap_coco"]["dog"] == pytest.approx(1.0)


def test_cli_bad_input_names_file_and_line(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    gt, det = tiny
    (det / "img2.txt").write_text("cat 0.7 30 30 39 39\ncat 0.6 60 60 70\n")
    proc = _run(["--gt-dir", str(gt), "--det-dir", str(det)], cwd=tmp_path)
    assert proc.returncode == 2
    assert f"{det / 'img2.txt'}:2:" in proc.stderr and "6 fields" in proc.stderr
    assert proc.stdout == ""

    (det / "img2.txt").write_text("cat high 30 30 39 39\n")
    proc = _run(["--gt-dir", str(gt), "--det-dir", str(det)], cwd=tmp_path)
    assert proc.returncode == 2 and f"{det / 'img2.txt'}:1: score 'high'" in proc.stderr

    proc = _run(["--gt-dir", str(tmp_path / "missing"), "--det-dir", str(det)], cwd=tmp_path)
    assert proc.returncode == 2 and "missing" in proc.stderr

    proc = _run(["--gt-dir", str(gt)], cwd=tmp_path)
    assert proc.returncode == 2 and "--det-dir" in proc.stderr


def test_reader_rules(tmp_path: Path) -> None:
    gt = _write(tmp_path / "gt", {"a.txt": "cat 1 1 10 10 difficult\n", "b.txt": ""})
    det = _write(tmp_path / "det", {"a.txt": "cow 0.5 1 1 10 10\ncat 0.4 1 1 10 10\n"})
    data = load_text_results(gt, det)
    assert data.class_names == ["cat"]
    assert data.gt["b"]["boxes"].shape == (0, 4)  # empty file: an image without objects
    assert data.gt["a"]["difficult"].tolist() == [True]
    assert data.dets["a"]["labels"].tolist() == [0]  # the 'cow' detection was dropped ...
    assert any("cow" in w for w in data.warnings)  # ... with a warning
    with pytest.raises(ValueError, match=r"a\.txt:1: class 'cow' is not in the class list"):
        load_text_results(gt, det, ["cat", "dog"])
    _write(gt, {"c.txt": "cat 1 1 10 10 hard\n"})
    with pytest.raises(ValueError, match=r"c\.txt:1: 6th field must be the word 'difficult'"):
        load_text_results(gt, det)
    _write(gt, {"c.txt": "cat 10 1 1 10\n"})
    with pytest.raises(ValueError, match=r"c\.txt:1: box .* x2 < x1"):
        load_text_results(gt, det)
    (tmp_path / "cls.txt").write_text("cat\ncat\n")
    with pytest.raises(ValueError, match=r"cls\.txt:2: duplicate class name 'cat'"):
        read_class_file(tmp_path / "cls.txt")


def test_table_and_json_from_api(tiny: tuple[Path, Path], tmp_path: Path) -> None:
    res = evaluator_from_text(load_text_results(*tiny)).compute()
    table = format_ap_table(res)
    assert "mAP VOC2007 11-point" in table and "mAP area (VOC2010+)" in table
    assert "detections on images without ground truth (false positives): 1" in table
    path = tmp_path / "out.json"
    write_json(res, path, extra={"iou_threshold": 0.5})
    assert json.loads(path.read_text())["iou_threshold"] == 0.5
    with pytest.raises(ValueError, match="overwrite"):
        write_json(res, path, extra={"map_area": 0.0})
    write_json(res, tmp_path / "new" / "dir" / "out.json")  # missing folders are created
    assert json.loads((tmp_path / "new" / "dir" / "out.json").read_text())["map_area"] == res["map_area"]


def test_cli_on_released_model_fixture(tmp_path: Path) -> None:
    if not FIXTURE.is_file():
        pytest.skip(f"fixture not present: {FIXTURE}")
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    proc = _run(["--gt-dir", str(tmp_path / "ground-truth"),
                 "--det-dir", str(tmp_path / "detection-results")], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^mAP VOC2007 11-point\s*: 52\.85%", proc.stdout, re.M)
    assert re.search(r"^mAP area \(VOC2010\+\)\s*: 53\.13%", proc.stdout, re.M)
    assert _row(proc.stdout, "pottedplant")[-1] == "23.37"
