"""Tests of tools/demo.py (real photos, greyscale, RGBA, 16-bit, video, --stream) and of drawing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

from conftest import save_tiny_checkpoint
from spyolo.config import Config
from spyolo.data.images import read_image
from spyolo.inference import Detector, Prediction
from spyolo.inference.draw import class_colors, draw_predictions, draw_style

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "tools" / "demo.py"
CLASSES = ["cat", "dog", "bird"]
CONF = "0.05"  # low enough for the untrained tiny model to produce boxes



def make_checkpoint(path: Path, timesteps: int = 2, seed: int = 0) -> Path:
    """A tiny untrained SPYv4 checkpoint (64 px, width 0.25) with BN statistics from random images."""
    cfg = Config()
    cfg.data.img_size = 64
    cfg.model.width = 0.25
    cfg.model.timesteps = timesteps
    return save_tiny_checkpoint(path, cfg, CLASSES, seed)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt")


def _same_detections(records: list[dict], pred: Prediction) -> None:
    """JSON detections equal ``pred``'s (up to the JSON rounding), matched one to one.

    Equal scores are frequent in an untrained model (its silent cells all output the bias),
    so their order is not compared.
    """
    assert len(records) == len(pred)
    free = list(range(len(pred)))
    for d in records:
        match = next(
            (j for j in free if pred.labels[j] == d["label"] and abs(pred.scores[j] - d["score"]) <= 2e-6
             and np.abs(pred.boxes[j] - np.array(d["box"])).max() <= 2e-3),
            None,
        )
        assert match is not None, f"no match for {d}"
        free.remove(match)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(DEMO), "--device", "cpu", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _load_demo(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    from spyolo.cli import demo

    return demo


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory) -> Path:
    """scikit-image's sample photos plus greyscale, RGBA and 16-bit variants at odd sizes."""
    skdata = pytest.importorskip("skimage.data")
    folder = tmp_path_factory.mktemp("photos")
    astronaut, chelsea = skdata.astronaut(), skdata.chelsea()
    motorcycle = skdata.stereo_motorcycle()[0]
    cv2.imwrite(str(folder / "astronaut.png"), astronaut[:, :, ::-1])
    cv2.imwrite(str(folder / "chelsea.jpg"), chelsea[:, :, ::-1])
    cv2.imwrite(str(folder / "motorcycle_left.png"), motorcycle[:, :, ::-1])
    cv2.imwrite(str(folder / "grey.png"), cv2.cvtColor(chelsea, cv2.COLOR_RGB2GRAY)[:157, :201])
    rgba = np.dstack([astronaut[:333, :77, ::-1], np.full((333, 77), 200, np.uint8)])
    cv2.imwrite(str(folder / "rgba.png"), rgba)
    cv2.imwrite(str(folder / "deep16.png"), chelsea[:61, :299, ::-1].astype(np.uint16) * 257)
    (folder / "notes.txt").write_text("not an image: ignored by the folder scan")
    return folder


EXPECTED_SIZES = {  # name -> (height, width) of the input
    "astronaut.png": (512, 512), "chelsea.jpg": (300, 451), "motorcycle_left.png": (500, 741),
    "grey.png": (157, 201), "rgba.png": (333, 77), "deep16.png": (61, 299),
}


def _check_image_outputs(out: Path, photo_dir: Path) -> int:
    """Files, sizes, JSON structure and drawing of a folder run; returns the detection count."""
    assert sorted(p.name for p in out.iterdir()) == sorted(
        list(EXPECTED_SIZES) + [Path(n).stem + ".json" for n in EXPECTED_SIZES]
    )
    total = 0
    for name, (h, w) in EXPECTED_SIZES.items():
        annotated = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)
        assert annotated is not None and annotated.shape == (h, w, 3) and annotated.dtype == np.uint8
        data = json.loads((out / f"{Path(name).stem}.json").read_text())
        assert (data["height"], data["width"], data["box_format"]) == (h, w, "xyxy_continuous_pixels")
        assert data["image"] == str(photo_dir / name)
        assert len(data["detections"]) > 0
        boxes = np.array([d["box"] for d in data["detections"]])
        assert np.all(boxes >= 0) and np.all(boxes[:, [0, 2]] <= w) and np.all(boxes[:, [1, 3]] <= h)
        assert np.all(boxes[:, 2] >= boxes[:, 0]) and np.all(boxes[:, 3] >= boxes[:, 1])
        assert all(d["name"] == CLASSES[d["label"]] and 0.05 <= d["score"] <= 1 for d in data["detections"])
        total += len(data["detections"])
        if not name.endswith(".jpg"):  # lossless output: the tool drew the boxes its JSON holds
            src = annotated_source(photo_dir / name)
            from_json = Prediction(
                boxes=boxes.astype(np.float32), scores=np.array([d["score"] for d in data["detections"]], np.float32),
                labels=np.array([d["label"] for d in data["detections"]]), class_names=tuple(CLASSES),
                image_size=(h, w),
            )
            expected = draw_predictions(src, from_json)
            assert not np.array_equal(expected, src)
            # JSON coordinates are rounded to 1/1000 px: a rare edge pixel may move by one
            assert np.mean(np.any(annotated != expected, axis=2)) < 0.005
    return total


def test_demo_on_a_folder_of_real_photos(ckpt: Path, photo_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "out"
    proc = _run(["--weights", str(ckpt), "--source", str(photo_dir), "--out", str(out), "--conf", CONF,
                 "--batch-size", "4"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "wrote 6 annotated images and 6 JSON files" in proc.stdout
    total = _check_image_outputs(out, photo_dir)
    assert f"({total} detections)" in proc.stdout

    # The tool writes what the API predicts. Checked in this process and on the CPU for both: a
    # spiking network is discontinuous at the threshold, so runs that differ in the last bits
    # (another device, another process's thread set-up) may flip a spike and move a box.
    demo = _load_demo(monkeypatch)
    out2 = tmp_path / "out2"
    assert demo.main(["--weights", str(ckpt), "--source", str(photo_dir), "--out", str(out2), "--conf", CONF,
                      "--batch-size", "4", "--no-progress", "--device", "cpu"]) == 0
    capsys.readouterr()
    _check_image_outputs(out2, photo_dir)
    det = Detector.from_checkpoint(ckpt, device="cpu", conf=float(CONF), batch_size=4)
    files = sorted(photo_dir / n for n in EXPECTED_SIZES)  # the tool's batches: sorted files, 4 each
    for f, pred in zip(files, det.predict([read_image(f) for f in files], rgb=True)):
        _same_detections(json.loads((out2 / f"{f.stem}.json").read_text())["detections"], pred)


def annotated_source(path: Path) -> np.ndarray:
    """The 8-bit BGR image the demo draws on for an input file."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image.dtype == np.uint16:
        image = np.round(image / 257.0).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(image[:, :, :3])


def _make_video(path: Path, frames: int = 10) -> None:
    skdata = pytest.importorskip("skimage.data")
    base = cv2.resize(skdata.chelsea()[:, :, ::-1], (128, 96), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (128, 96))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.ascontiguousarray(np.roll(base, 4 * i, axis=1)))
    writer.release()


def _read_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_demo_on_a_video_per_frame_and_stream(ckpt: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    video = tmp_path / "clip.mp4"
    _make_video(video)
    source_frames = _read_frames(video)
    assert len(source_frames) == 10

    # Per-frame mode: every frame T=2 steps from a fresh state.
    proc = _run(["--weights", str(ckpt), "--source", str(video), "--out", str(tmp_path / "a"), "--conf", CONF],
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"achieved [0-9.]+ fps end-to-end, [0-9.]+ fps in the detector", proc.stdout)
    assert "10 frames, 20 timesteps" in proc.stdout
    out_frames = _read_frames(tmp_path / "a" / "clip.mp4")
    assert len(out_frames) == 10 and out_frames[0].shape == (96, 128, 3)
    records = _records(tmp_path / "a" / "clip.jsonl")
    assert [r["frame"] for r in records] == list(range(10))
    assert {r["timesteps"] for r in records} == {2}
    assert all((r["width"], r["height"]) == (128, 96) for r in records)

    # Stream mode: warm-up 3 steps on frame 0, then k=1 step per frame with the state kept.
    proc = _run(["--weights", str(ckpt), "--source", str(video), "--out", str(tmp_path / "b"), "--conf", CONF,
                 "--stream", "--k", "1", "--warmup", "3", "--max-frames", "6", "--no-progress"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "6 frames, 8 timesteps, mode: stream" in proc.stdout
    assert re.search(r"achieved [0-9.]+ fps", proc.stdout)
    assert len(_read_frames(tmp_path / "b" / "clip.mp4")) == 6
    assert [r["timesteps"] for r in _records(tmp_path / "b" / "clip.jsonl")] == [3, 1, 1, 1, 1, 1]

    # Both modes write what the API predicts (in this process, see the folder test).
    demo = _load_demo(monkeypatch)
    for mode, extra in (("c", []), ("d", ["--stream", "--k", "1", "--warmup", "3", "--max-frames", "6"])):
        assert demo.main(["--weights", str(ckpt), "--source", str(video), "--out", str(tmp_path / mode),
                          "--conf", CONF, "--no-progress", "--device", "cpu", *extra]) == 0
    capsys.readouterr()
    det = Detector.from_checkpoint(ckpt, device="cpu", conf=float(CONF))
    per_frame = [det.predict(frame)[0] for frame in source_frames]
    for record, pred in zip(_records(tmp_path / "c" / "clip.jsonl"), per_frame, strict=True):
        _same_detections(record["detections"], pred)
    session = det.stream(steps_per_frame=1, warmup=3)
    stream = [session.step(frame) for frame in source_frames[:6]]
    for record, pred in zip(_records(tmp_path / "d" / "clip.jsonl"), stream, strict=True):
        _same_detections(record["detections"], pred)
    # the state carries over: frame 1 in stream mode (4 steps so far) differs from frame 1 alone (2 steps)
    assert stream[1].to_dict() != per_frame[1].to_dict()


def test_demo_bad_inputs(ckpt: Path, photo_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    demo = _load_demo(monkeypatch)
    assert demo.main(["--weights", str(ckpt), "--source", str(tmp_path / "missing.jpg"),
                      "--out", str(tmp_path / "o")]) == 2
    assert "missing.jpg: no such file or folder" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert demo.main(["--weights", str(ckpt), "--source", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "empty: no image files" in capsys.readouterr().err
    assert demo.main(["--weights", str(ckpt), "--source", str(photo_dir), "--out", str(photo_dir)]) == 2
    assert "is the source folder" in capsys.readouterr().err
    assert demo.main(["--weights", str(tmp_path / "none.pt"), "--source", str(photo_dir),
                      "--out", str(tmp_path / "o")]) == 2
    assert "none.pt: checkpoint not found" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"\x89PNG not really")
    assert demo.main(["--weights", str(ckpt), "--source", str(bad), "--out", str(tmp_path / "o"),
                      "--no-progress"]) == 2
    assert "broken.png: cannot decode image" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    assert demo.classify_source("3") == ("camera", 3)
    (tmp_path / "3").write_bytes(b"")
    assert demo.classify_source("3") == ("image", Path("3"))  # an existing file wins over a camera index
    assert demo.classify_source(str(photo_dir)) == ("folder", photo_dir)
    assert demo.output_names([Path("a.jpg"), Path("a.png"), Path("b.JPG")]) == [
        ("a_jpg.jpg", "a_jpg.json"), ("a_png.png", "a_png.json"), ("b.jpg", "b.json")
    ]


# ------------------------------------------------------------------------- drawing


def test_draw_style_scales_with_the_image() -> None:
    assert draw_style(100, 100) == draw_style(100, 4000)  # the shorter side decides
    s = draw_style(100, 120)
    assert (s.line_width, s.font_scale, s.font_thickness) == (1, 0.3, 1)
    s = draw_style(500, 700)
    assert (s.line_width, s.font_scale, s.font_thickness) == (2, 0.625, 1)
    s = draw_style(2160, 3840)
    assert (s.line_width, s.font_scale, s.font_thickness) == (9, 2.7, 5)


def test_class_colours_are_distinct_and_stable() -> None:
    colours = class_colors(20)
    assert colours == class_colors(20) and len(set(colours)) == 20
    assert colours[0] == (38, 38, 255)  # hue 0, saturation 0.85, value 1: red in BGR
    assert all(max(c) >= 190 for c in colours)  # saturated, bright enough to see


def test_draw_predictions_box_and_label() -> None:
    image = np.zeros((100, 120, 3), np.uint8)
    pred = Prediction(
        boxes=np.array([[10.0, 40.0, 50.0, 80.0]], np.float32), scores=np.array([0.9], np.float32),
        labels=np.array([1]), class_names=("cat", "dog"), image_size=(100, 120),
    )
    colour = class_colors(2)[1]
    out = draw_predictions(image, pred)
    assert image.max() == 0  # the input is not modified
    # 1-px box over the covered pixels: columns 10..49, rows 40..79
    assert tuple(out[60, 10]) == colour and tuple(out[60, 49]) == colour
    assert tuple(out[79, 30]) == colour
    assert out[60, 30].max() == 0 and out[60, 51].max() == 0  # inside and outside the box stay black
    # the label sits on a filled box in the class colour just above the box's top edge
    label_rows = out[25:40, 10:40].reshape(-1, 3)
    assert (label_rows == np.array(colour)).all(axis=1).mean() > 0.4
    with pytest.raises(ValueError, match="prediction is for 100x120"):
        draw_predictions(np.zeros((50, 50, 3), np.uint8), pred)
