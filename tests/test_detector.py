"""Tests of the Detector API (spyolo.inference.detector): inputs, box mapping, JSON, streaming."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import save_tiny_checkpoint
from spyolo.checkpoint import CheckpointError
from spyolo.config import Config
from spyolo.data.images import read_image
from spyolo.errors import ImageReadError
from spyolo.inference import BOX_FORMAT, Detector, Prediction
from spyolo.inference.postprocess import postprocess
from spyolo.models.heads import head_spec_for
from spyolo.snn import reset_states

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["cat", "dog", "bird"]


def make_checkpoint(path: Path, kind: str = "spyv4", timesteps: int = 2, seed: int = 0) -> Path:
    """A tiny untrained checkpoint (64 px, width 0.25) in the format the trainer writes."""
    cfg = Config()
    cfg.data.img_size = 64
    cfg.model.kind = kind
    cfg.model.width = 0.25
    cfg.model.timesteps = timesteps
    return save_tiny_checkpoint(path, cfg, CLASSES, seed)



@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt")


@pytest.fixture(scope="module")
def det(ckpt: Path) -> Detector:
    return Detector.from_checkpoint(ckpt, device="cpu", conf=0.05)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """An odd-sized RGB crop of a real photo (scikit-image's astronaut), 203 x 317."""
    skdata = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skdata.astronaut()[40:243, 100:417])


def _same(a: Prediction, b: Prediction, box_atol: float = 1e-3, score_atol: float = 1e-5) -> None:
    """Same detections up to float noise, matched one to one (label, score, box).

    An untrained model gives many exactly equal scores (its silent cells all output the
    bias), so the order among equal scores is not part of the contract.
    """
    assert a.image_size == b.image_size
    assert len(a) == len(b)
    free = list(range(len(b)))
    for box, score, label in zip(a.boxes, a.scores, a.labels):
        match = next(
            (j for j in free if b.labels[j] == label and abs(b.scores[j] - score) <= score_atol
             and np.abs(b.boxes[j] - box).max() <= box_atol),
            None,
        )
        assert match is not None, f"no match for {label} {score} {box}"
        free.remove(match)


def test_from_checkpoint_settings(ckpt: Path) -> None:
    d = Detector.from_checkpoint(ckpt, device="cpu")
    assert (d.conf, d.nms, d.timesteps, d.img_size) == (0.25, 0.45, 2, 64)  # eval.demo_conf / demo_nms
    assert d.class_names == tuple(CLASSES) and d.spiking and d.steps_per_image == 2
    d = Detector.from_checkpoint(ckpt, device="cpu", timesteps=5, conf=0.5, nms=0.3, max_det=7)
    assert (d.conf, d.nms, d.timesteps, d.max_det) == (0.5, 0.3, 5, 7)
    with pytest.raises(CheckpointError, match="not found"):
        Detector.from_checkpoint(ckpt.parent / "missing.pt")


def test_predict_matches_the_evaluation_pipeline_by_hand(det: Detector, photo: np.ndarray) -> None:
    pred = det.predict(photo, rgb=True)[0]
    assert len(pred) > 0 and pred.image_size == (203, 317)
    # By hand: bicubic stretch to 64x64 (the eval transform), /255, T=2 steps from zero state,
    # decode + NMS in input pixels, then x * 317/64 and y * 203/64.
    x = torch.from_numpy(cv2.resize(photo, (64, 64), interpolation=cv2.INTER_CUBIC)).permute(2, 0, 1)
    x = x.float().div(255).unsqueeze(0)
    with torch.no_grad():
        reset_states(det.model)
        for _ in range(2):
            outs = det.model(x)
    ref = postprocess(outs, head_spec_for(det.model, 64), 0.05, 0.45, 300)[0]
    boxes = ref.boxes.numpy() * np.array([317 / 64, 203 / 64, 317 / 64, 203 / 64])
    boxes = np.clip(boxes, 0, [317, 203, 317, 203])
    np.testing.assert_allclose(pred.boxes, boxes, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(pred.scores, ref.scores.numpy(), atol=1e-6)
    np.testing.assert_array_equal(pred.labels, ref.labels.numpy())
    assert np.all(np.diff(pred.scores) <= 0)


def test_every_input_kind_gives_the_same_result(det: Detector, photo: np.ndarray, tmp_path: Path) -> None:
    bgr = np.ascontiguousarray(photo[:, :, ::-1])
    ref = det.predict(bgr)[0]  # BGR is the default convention
    png = tmp_path / "photo.png"
    cv2.imwrite(str(png), bgr)
    from_path = det.predict(png)[0]
    _same(ref, from_path)
    assert from_path.source == str(png) and ref.source is None
    _same(ref, det.predict(str(png))[0])
    _same(ref, det.predict(photo, rgb=True)[0])
    _same(ref, det.predict(Image.fromarray(photo))[0])
    _same(ref, det.predict(np.dstack([bgr, np.full(bgr.shape[:2], 7, np.uint8)]))[0])  # BGRA: alpha dropped
    _same(ref, det.predict(bgr.astype(np.uint16) * 257)[0])  # 16-bit scales back exactly
    _same(ref, det.predict(bgr.astype(np.float32) / 255.0)[0])  # float in [0, 1]
    rgba = tmp_path / "photo_rgba.png"
    cv2.imwrite(str(rgba), np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)]))
    _same(ref, det.predict(rgba)[0])


def test_greyscale_inputs(det: Detector, photo: np.ndarray, tmp_path: Path) -> None:
    grey = np.ascontiguousarray(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[:97, :131])
    ref = det.predict(np.dstack([grey] * 3))[0]
    assert ref.image_size == (97, 131)
    for variant in (grey, grey[:, :, None], Image.fromarray(grey)):
        _same(ref, det.predict(variant)[0])
    path = tmp_path / "grey.png"
    cv2.imwrite(str(path), grey)
    _same(ref, det.predict(path)[0])
    path16 = tmp_path / "grey16.png"
    cv2.imwrite(str(path16), grey.astype(np.uint16) * 257)
    _same(ref, det.predict(path16)[0])


def test_list_is_batched_like_single_calls(ckpt: Path, photo: np.ndarray) -> None:
    d = Detector.from_checkpoint(ckpt, device="cpu", conf=0.05, batch_size=2)
    images = [photo, np.ascontiguousarray(photo[::2, ::3]), np.ascontiguousarray(photo[50:, 10:200])]
    batched = d.predict(images, rgb=True)
    assert len(batched) == 3
    for image, pred in zip(images, batched):
        _same(d.predict(image, rgb=True)[0], pred)
        assert pred.image_size == image.shape[:2]
        assert np.all(pred.boxes >= 0) and np.all(pred.boxes[:, [0, 2]] <= image.shape[1])
        assert np.all(pred.boxes[:, [1, 3]] <= image.shape[0])
    assert d.predict([]) == []


def test_json_and_box_conventions(det: Detector, photo: np.ndarray) -> None:
    pred = det.predict(photo, rgb=True)[0]
    data = json.loads(pred.to_json())
    assert data == pred.to_dict()
    assert (data["width"], data["height"], data["box_format"]) == (317, 203, BOX_FORMAT)
    assert len(data["detections"]) == len(pred)
    first = data["detections"][0]
    assert first["name"] == CLASSES[first["label"]] == pred.names[0]
    np.testing.assert_allclose(first["box"], pred.boxes[0], atol=1e-3)
    assert first["score"] == pytest.approx(float(pred.scores[0]), abs=1e-6)
    np.testing.assert_allclose(pred.voc_boxes(), pred.boxes + np.array([1, 1, 0, 0], np.float32))


def test_unreadable_inputs_have_clear_errors(det: Detector, tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    with pytest.raises(ImageReadError, match=r"nope\.jpg: image file not found"):
        det.predict(missing)
    junk = tmp_path / "junk.jpg"
    junk.write_text("not an image")
    with pytest.raises(ImageReadError, match=r"junk\.jpg: cannot decode image"):
        det.predict([np.zeros((8, 8, 3), np.uint8), junk])
    with pytest.raises(ImageReadError, match=r"unsupported image shape \(8, 8, 2\)"):
        det.predict(np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(ImageReadError, match=r"values in \[-1, 3\]"):
        read_image(np.array([[-1, 3]], np.int32))
    with pytest.raises(ImageReadError, match=r"float images must be in \[0, 1\]"):
        read_image(np.full((4, 4, 3), 200.0, np.float32))
    with pytest.raises(ImageReadError, match="empty image"):
        read_image(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ImageReadError, match="unsupported input of type int"):
        det.predict(5)


def test_stream_session_keeps_the_state(ckpt: Path, photo: np.ndarray) -> None:
    det = Detector.from_checkpoint(ckpt, device="cpu", conf=0.05)

    def fresh(steps: int) -> Prediction:
        return Detector.from_checkpoint(ckpt, device="cpu", conf=0.05, timesteps=steps).predict(photo, rgb=True)[0]

    session = det.stream(steps_per_frame=2, warmup=3)
    _same(fresh(3), session.step(photo, rgb=True))  # warm-up: 3 steps from a fresh state
    _same(fresh(5), session.step(photo, rgb=True))  # + 2 steps, state kept
    assert (session.frames, session.timesteps_run) == (2, 5)
    det.predict(photo, rgb=True)  # takes the neuron state: the session must start over
    _same(fresh(3), session.step(photo, rgb=True))
    assert (session.frames, session.timesteps_run) == (1, 3)
    session.reset()
    _same(fresh(3), session(photo, rgb=True))
    with pytest.raises(ValueError, match="steps_per_frame"):
        det.stream(steps_per_frame=0)


def test_ann_checkpoint(tmp_path: Path, photo: np.ndarray) -> None:
    det = Detector.from_checkpoint(make_checkpoint(tmp_path / "ann.pt", kind="ann"), device="cpu", conf=0.05)
    assert not det.spiking and det.steps_per_image == 1
    pred = det.predict(photo, rgb=True)[0]
    session = det.stream(steps_per_frame=1, warmup=8)
    _same(pred, session.step(photo, rgb=True))
    assert session.timesteps_run == 1


def test_import_spyolo_is_light() -> None:
    code = (
        "import sys, spyolo; assert 'torch' not in sys.modules, 'torch imported'; "
        "from spyolo import Detector; assert 'torch' in sys.modules; print(Detector.__name__)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "Detector"
