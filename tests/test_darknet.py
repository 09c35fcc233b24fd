"""Darknet YOLOv4-tiny import: the .cfg check, the .weights reader, ``spyolo convert``, the
``scale_x_y`` decoding, and (when ``../shared/realdata`` is present) the original COCO weights
against OpenCV's independent Darknet reader.

The small weight files here are written by this test, in the Darknet layout as Darknet's
``save_weights`` writes it (header, then per convolution: BN beta, gamma, running mean, running
variance, kernel; without BN: bias, kernel), in the layer order spelled out below.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import tiny_config
from spyolo.cli import convert as convert_cli
from spyolo.cli import demo as demo_cli
from spyolo.errors import TransferError
from spyolo.inference import Detector
from spyolo.models import YOLOv4Tiny, decode_head, transfer_weights
from spyolo.models.darknet import read_darknet_cfg, read_darknet_weights
from spyolo.models.spyv4 import SPYv4

REAL = Path(__file__).resolve().parents[2] / "shared" / "realdata"
YOLO_DIR = REAL / "yolov4-tiny"
needs_real = pytest.mark.skipif(not (YOLO_DIR / "yolov4-tiny.weights").is_file(),
                                reason="../shared/realdata (the original YOLOv4-tiny files) is not present")

# Darknet file order of YOLOv4-tiny's convolutions (the cfg's order), as spyolo module names.
ORDER = ["conv1", "conv2"] + [f"block{b}.c{c}" for b in (1, 2, 3) for c in (1, 2, 3, 4)] + [
    "conv3", "conv_p5", "neck1", "head1", "conv_up", "neck2", "head2"]


# ------------------------------------------------------------------------------ writers


def write_weights(path: Path, model: torch.nn.Module, header: str = "new", extra: bytes = b"") -> Path:
    """``model`` (an ANN twin) as a Darknet .weights file."""
    state = model.state_dict()
    parts = []
    for name in ORDER:
        if name.startswith("head"):
            parts += [state[f"{name}.bias"], state[f"{name}.weight"]]
        else:
            parts += [state[f"{name}.bn.{k}"] for k in ("bias", "weight", "running_mean", "running_var")]
            parts.append(state[f"{name}.conv.weight"])
    values = np.concatenate([p.detach().numpy().reshape(-1) for p in parts]).astype("<f4")
    if header == "new":
        head = np.array([0, 2, 5], "<i4").tobytes() + np.array([32013312], "<i8").tobytes()
    else:
        head = np.array([0, 1, 0], "<i4").tobytes() + np.array([64000], "<i4").tobytes()
    path.write_bytes(head + values.tobytes() + extra)
    return path


def cfg_text(filters: list[int], classes: int, scale: float = 1.05, size: int = 416) -> str:
    """A YOLOv4-tiny cfg; ``filters`` = conv1, conv2, block1..3 c, conv3, conv_p5, neck1, conv_up, neck2."""
    c1, c2, b1, b2, b3, c3, p5, n1, up, n2 = filters

    def conv(f, k, s=1, bn=True):
        act = "leaky" if bn else "linear"
        return (f"[convolutional]\n{'batch_normalize=1' if bn else ''}\n"
                f"filters={f}\nsize={k}\nstride={s}\npad=1\nactivation={act}\n\n")

    def block(c):
        return (conv(c, 3) + "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n\n" + conv(c // 2, 3) + conv(c // 2, 3)
                + "[route]\nlayers = -1,-2\n\n" + conv(c, 1)
                + "[route]\nlayers = -6,-1\n\n[maxpool]\nsize=2\nstride=2\n\n")

    yolo = (f"[yolo]\nmask = {{}}\nanchors = 10,14,  23,27,  37,58,  81,82,  135,169,  344,319\nclasses={classes}\n"
            f"num=6\nscale_x_y = {scale}\n\n")
    out = 3 * (5 + classes)
    return (f"[net]\nwidth={size}\nheight={size}\nchannels=3\n\n" + conv(c1, 3, 2) + conv(c2, 3, 2) + block(b1)
            + block(b2) + block(b3) + conv(c3, 3) + "####\n" + conv(p5, 1) + conv(n1, 3) + conv(out, 1, bn=False)
            + yolo.format("3,4,5") + "[route]\nlayers = -4\n\n" + conv(up, 1) + "[upsample]\nstride=2\n\n"
            + "[route]\nlayers = -1, 23\n\n" + conv(n2, 3) + conv(out, 1, bn=False) + yolo.format("1,2,3"))


QUARTER = [8, 16, 16, 32, 64, 128, 64, 128, 32, 64]


def random_twin(classes: int = 3, width: float = 0.25, seed: int = 0) -> YOLOv4Tiny:
    torch.manual_seed(seed)
    model = YOLOv4Tiny(num_classes=classes, width=width, scale_xy=1.05)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif t.is_floating_point():
                t.normal_(0, 0.1)
    return model.eval()


@pytest.fixture
def tiny_darknet(tmp_path):
    model = random_twin()
    weights = write_weights(tmp_path / "tiny.weights", model)
    (tmp_path / "tiny.cfg").write_text(cfg_text(QUARTER, 3))
    return model, weights


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def expect_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]


# -------------------------------------------------------------------------------- reader


@pytest.mark.parametrize("header", ["new", "old"])
def test_weights_round_trip_both_headers(tmp_path, header):
    """Every tensor lands where Darknet's order puts it, for the 64-bit and the 32-bit 'seen' header."""
    src = random_twin()
    path = write_weights(tmp_path / "net.weights", src, header=header)
    dark = read_darknet_weights(path)  # no cfg: classes from the size
    assert (dark.width, dark.num_classes) == (0.25, 3)
    assert dark.version == ((0, 2, 5) if header == "new" else (0, 1, 0))
    assert dark.seen == (32013312 if header == "new" else 64000)
    dst = YOLOv4Tiny(num_classes=3, width=0.25, scale_xy=1.05)
    report = transfer_weights(dst, path)
    assert not report.skipped and "Darknet" in report.source_kind
    for key, value in src.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(dst.state_dict()[key], value), key
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(src(x), dst.eval()(x)):
            torch.testing.assert_close(a, b)


def test_bn_and_bias_only_layers_by_position(tmp_path):
    """The first values are conv1's BN beta; the very last ones head2's kernel, right after its bias."""
    src = random_twin()
    path = write_weights(tmp_path / "net.weights", src)
    raw = np.frombuffer(path.read_bytes(), "<f4", offset=20)
    state = src.state_dict()
    n = state["conv1.bn.bias"].numel()
    np.testing.assert_array_equal(raw[:n], state["conv1.bn.bias"].numpy())
    np.testing.assert_array_equal(raw[n:2 * n], state["conv1.bn.weight"].numpy())
    kernel = state["head2.weight"].numel()
    bias = state["head2.bias"].numel()
    np.testing.assert_array_equal(raw[-kernel:], state["head2.weight"].numpy().reshape(-1))
    np.testing.assert_array_equal(raw[-kernel - bias:-kernel], state["head2.bias"].numpy())
    dark = read_darknet_weights(path)
    assert "conv1.conv.bias" not in dark.state and "head1.bias" in dark.state  # BN layers carry no conv bias


def test_cfg_checked_and_read(tmp_path, tiny_darknet):
    _, weights = tiny_darknet
    spec = read_darknet_cfg(tmp_path / "tiny.cfg")
    assert (spec.width, spec.num_classes, spec.scale_xy, spec.input_size) == (0.25, 3, 1.05, (416, 416))
    assert spec.masks == ((3, 4, 5), (1, 2, 3)) and spec.anchors[0] == (10.0, 14.0)
    dark = read_darknet_weights(weights)  # finds tiny.cfg beside it
    assert dark.spec is not None and dark.spec.num_classes == 3


@pytest.mark.parametrize("fault, needles", [
    ("truncated", ["holds", "needs", "truncated"]),
    ("trailing", ["holds", "needs", "trailing"]),
    ("partial", ["not a whole number of float32"]),
    ("text", ["a text file"]),
    ("tiny", ["shorter than"]),
    ("nan", ["NaN or infinite"]),
])
def test_bad_weight_files(tmp_path, tiny_darknet, fault, needles):
    model, weights = tiny_darknet
    data = weights.read_bytes()
    bad = tmp_path / "bad.weights"
    (tmp_path / "bad.cfg").write_text((tmp_path / "tiny.cfg").read_text())
    if fault == "truncated":
        bad.write_bytes(data[:-400])
    elif fault == "trailing":
        bad.write_bytes(data + b"\0" * 400)
    elif fault == "partial":
        bad.write_bytes(data + b"\0\0\0")
    elif fault == "text":
        bad.write_text("this is not a weights file\n" * 10)
    elif fault == "tiny":
        bad.write_bytes(data[:10])
    else:
        arr = np.frombuffer(data, np.uint8).copy()
        arr[40:44] = np.frombuffer(np.array([np.nan], "<f4").tobytes(), np.uint8)
        bad.write_bytes(arr.tobytes())
    with pytest.raises(TransferError) as info:
        read_darknet_weights(bad)
    message = str(info.value)
    assert str(bad) in message and "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_no_cfg_class_count_from_size_and_wrong_sizes(tmp_path):
    model = random_twin(classes=7)
    path = write_weights(tmp_path / "seven.weights", model)
    assert read_darknet_weights(path).num_classes == 7
    with pytest.raises(TransferError, match="weights for 7 classes.*but 3 are needed"):
        read_darknet_weights(path, num_classes=3)
    with pytest.raises(TransferError, match="width 0.25.*model has width 0.5"):
        read_darknet_weights(path, width=0.5)
    truncated = tmp_path / "cut.weights"
    truncated.write_bytes(path.read_bytes()[:-4 * 37])
    with pytest.raises(TransferError, match="no YOLOv4-tiny explains"):
        read_darknet_weights(truncated)


def test_cfg_of_another_network_or_count(tmp_path, tiny_darknet):
    _, weights = tiny_darknet
    text = cfg_text(QUARTER, 3)
    # full YOLOv4 starts with a stride-1 mish convolution; YOLOv3-tiny with a max-pool after conv1
    v4 = tmp_path / "yolov4.cfg"
    v4.write_text(text.replace("stride=2\npad=1\nactivation=leaky", "stride=1\npad=1\nactivation=mish", 1))
    with pytest.raises(TransferError, match=r"not a YOLOv4-tiny cfg: layer 0 .*stride=1, YOLOv4-tiny has stride=2"):
        read_darknet_cfg(v4)
    v3 = tmp_path / "yolov3-tiny.cfg"
    v3.write_text(text.replace("[convolutional]", "[maxpool]\nsize=2\nstride=2\n\n[convolutional]", 2).replace(
        "[maxpool]\nsize=2\nstride=2\n\n[convolutional]", "[convolutional]", 1))
    with pytest.raises(TransferError, match=r"layer 1 .* is \[maxpool\], YOLOv4-tiny has \[convolutional\]"):
        read_darknet_cfg(v3)
    # a cfg for another class count than the file holds: the count check names both
    other = tmp_path / "other.cfg"
    other.write_text(cfg_text(QUARTER, 5))
    with pytest.raises(TransferError, match=r"holds [\d,]+ float32 values.*with 5 classes \(the cfg other.cfg\) needs"):
        read_darknet_weights(weights, cfg=other)
    # different masks or scale_x_y in the two [yolo] layers
    odd = tmp_path / "odd.cfg"
    odd.write_text(text.replace("scale_x_y = 1.05", "scale_x_y = 1.1", 1))
    with pytest.raises(TransferError, match="different scale_x_y"):
        read_darknet_cfg(odd)
    binary = tmp_path / "binary.cfg"
    binary.write_bytes(b"\xff\xfe\x00[net]")
    with pytest.raises(TransferError, match="not UTF-8"):
        read_darknet_cfg(binary)


def test_init_from_darknet_into_spyv4_and_other_class_count(tmp_path, tiny_darknet):
    """SPYv4 takes the convolutions and BN; the tau path has no counterpart; heads of another count give
    their box and objectness channels (or are skipped with heads="matching")."""
    model, weights = tiny_darknet
    heads = {"head1.weight", "head1.bias", "head2.weight", "head2.bias"}
    report = transfer_weights(SPYv4(num_classes=1, width=0.25), weights, heads="matching")
    assert {k for k, _ in report.skipped} == heads
    snn = SPYv4(num_classes=1, width=0.25)
    report = transfer_weights(snn, weights)
    assert set(report.partial) == heads and not report.skipped
    per_slot = model.head2.weight.shape[0] // 3
    assert torch.equal(snn.head2.weight[6:11], model.head2.weight[per_slot: per_slot + 5])  # slot 1: tx .. tobj
    assert torch.equal(snn.block2.c3.conv.weight, model.block2.c3.conv.weight)
    assert torch.equal(snn.conv_p5.bn.running_var, model.conv_p5.bn.running_var)
    assert any(k.startswith("conv1.tau_conv") for k in report.left_at_init)
    with pytest.raises(TransferError, match="model has width 0.5"):
        transfer_weights(SPYv4(num_classes=1, width=0.5), weights)


# ------------------------------------------------------------------------------ decoding


def test_scale_xy_decoding_by_hand():
    """centre = (sigmoid(t) * k - (k - 1) / 2 + cell) * stride; k = 1 is the plain decoding."""
    out = torch.zeros(1, 6, 2, 2)  # one anchor, one class
    out[0, 0, 0, 1] = 20.0  # sigmoid ~ 1 at column 1, row 0
    anchors = torch.tensor([[10.0, 20.0]])
    plain = decode_head(out, anchors, 16, 1)
    scaled = decode_head(out, anchors, 16, 1, scale_xy=1.05)
    assert plain.boxes[0, 0, 1, 0, 0].item() == pytest.approx((0.5 + 0) * 16)
    assert scaled.boxes[0, 0, 1, 0, 0].item() == pytest.approx((0.5 * 1.05 - 0.025 + 0) * 16)  # = 8
    assert scaled.boxes[0, 0, 0, 1, 0].item() == pytest.approx((1.0 * 1.05 - 0.025 + 1) * 16, abs=1e-5)  # 32.4
    assert plain.boxes[0, 0, 0, 1, 0].item() == pytest.approx(2 * 16, abs=1e-5)
    torch.testing.assert_close(scaled.boxes[..., 2:], plain.boxes[..., 2:])


# ---------------------------------------------------------------------------- the command


def test_convert_end_to_end(tmp_path, tiny_darknet, capsys):
    model, weights = tiny_darknet
    names = tmp_path / "three.names"
    names.write_text("cat\ndog\nbird\n")
    out = tmp_path / "out" / "tiny.pt"
    before = {p: sha(p) for p in (weights, tmp_path / "tiny.cfg", names)}
    assert convert_cli.main([str(weights), "--names", str(names), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert {p: sha(p) for p in before} == before
    det = Detector.from_checkpoint(out, device="cpu")
    assert det.class_names == ("cat", "dog", "bird") and det.img_size == 416 and det.interpolation == "linear"
    assert det.spec.scale_xy == 1.05 and not det.spiking
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(model(x), det.model(x)):
            torch.testing.assert_close(a, b)
    # a spyolo checkpoint like any other: demo, init_from (by class name), distill teacher
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), (np.random.default_rng(0).random((50, 70, 3)) * 255).astype(np.uint8))
    assert demo_cli.main(["--weights", str(out), "--source", str(image), "--out", str(tmp_path / "demo"),
                          "--no-progress"]) == 0
    assert (tmp_path / "demo" / "photo.json").is_file()
    twin = YOLOv4Tiny(num_classes=3, width=0.25, scale_xy=1.05)
    report = transfer_weights(twin, out, class_names=["bird", "cat", "dog"])
    assert any("remapped by name" in n for n in report.notes)
    # bird is source class 2: its channel lands in slot 0 of the remapped heads
    torch.testing.assert_close(twin.head1.bias[5], model.head1.bias[7])
    torch.testing.assert_close(twin.head1.bias[:5], model.head1.bias[:5])


def test_convert_refusals(tmp_path, tiny_darknet, capsys):
    _, weights = tiny_darknet
    out = tmp_path / "tiny.pt"
    assert convert_cli.main([str(weights), "--out", str(out)]) == 0
    capsys.readouterr()
    code = convert_cli.main([str(weights), "--out", str(out)])
    expect_error(code, capsys.readouterr().err, str(out), "already exists")
    code = convert_cli.main([str(weights), "--out", str(weights), "--exist-ok"])
    expect_error(code, capsys.readouterr().err, "would replace an input")
    code = convert_cli.main([str(weights), "--out", str(tmp_path)])
    expect_error(code, capsys.readouterr().err, "is a folder")
    wrong = tmp_path / "wrong.names"
    wrong.write_text("a\nb\n")
    code = convert_cli.main([str(weights), "--names", str(wrong), "--out", str(tmp_path / "x.pt")])
    expect_error(code, capsys.readouterr().err, str(wrong), "2 class names", "3 classes")
    text = tmp_path / "notes.weights"
    text.write_text("hello\n")
    code = convert_cli.main([str(text), "--out", str(tmp_path / "y.pt")])
    expect_error(code, capsys.readouterr().err, str(text), "text file")
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "y.pt").exists()


def test_distill_from_darknet_needs_matching_heads(tmp_path, tiny_darknet, make_tiny_config):
    from spyolo.errors import ConfigError
    from spyolo.train.distill import load_teacher

    _, weights = tiny_darknet
    student = SPYv4(num_classes=3, width=0.25, scale_xy=1.05)
    teacher = load_teacher(weights, student, torch.device("cpu"), class_names=["a", "b", "c"])
    assert not any(p.requires_grad for p in teacher.parameters())
    with pytest.raises(ConfigError, match="scale_xy=1.05"):
        load_teacher(weights, SPYv4(num_classes=3, width=0.25), torch.device("cpu"))
    with pytest.raises(ConfigError, match="num_classes"):
        load_teacher(weights, SPYv4(num_classes=2, width=0.25, scale_xy=1.05), torch.device("cpu"))


# ------------------------------------------------------------------- the original weights

# OpenCV 4.14's Darknet reader (cv2.dnn.readNetFromDarknet) on yolov4-tiny.cfg/.weights, 416x416
# stretch (blobFromImage: RGB / 255, bilinear), score = objectness x class probability >= 0.25,
# per-class NMS 0.45 (benchmarks/darknet_reference.py): (class, score, x1, y1, x2, y2) in pixels.
OPENCV_REFERENCE = {
    "bus.jpg": [
        ("person", 0.99307, 52.30, 385.49, 221.64, 911.17),
        ("person", 0.93396, 212.71, 405.16, 350.30, 846.67),
        ("person", 0.78272, 667.81, 377.92, 813.44, 866.84),
        ("bus", 0.66294, 107.01, 232.81, 828.04, 800.00),
        ("skateboard", 0.43340, 675.92, 831.01, 780.77, 879.22),
        ("truck", 0.28260, 4.83, 208.18, 690.84, 846.19),
    ],
    "zidane.jpg": [
        ("person", 0.76187, 743.65, 4.75, 1118.51, 711.89),
        ("tie", 0.49071, 972.53, 298.72, 1038.97, 410.86),
    ],
}


def assert_matches_reference(pred, reference, image_size):
    """Every reference detection found once (same class, box within 2 px, score within 0.02), nothing else."""
    height, width = image_size
    got = [(pred.class_names[int(label)], float(score), *map(float, box))
           for label, score, box in zip(pred.labels, pred.scores, pred.boxes)]
    assert len(got) == len(reference), got
    unmatched = list(got)
    for name, score, *box in reference:
        clipped = np.clip(np.array(box), 0, [width, height, width, height])  # boxes are clipped to the image
        match = [g for g in unmatched if g[0] == name and np.abs(np.array(g[2:]) - clipped).max() <= 2.0
                 and abs(g[1] - score) <= 0.02]
        assert match, (name, score, box, got)
        unmatched.remove(match[0])


@needs_real
def test_original_weights_file_size():
    dark = read_darknet_weights(YOLO_DIR / "yolov4-tiny.weights")
    total = sum(t.numel() for t in dark.state.values())
    assert total == 6_062_814  # 6,056,606 trainable parameters + 6,208 BN running statistics
    assert dark.spec is not None and dark.spec.scale_xy == 1.05 and dark.num_classes == 80
    twin = YOLOv4Tiny(num_classes=80)
    assert sum(p.numel() for p in twin.parameters()) == 6_056_606


@needs_real
def test_converted_coco_model_reproduces_darknet(tmp_path, capsys):
    out = tmp_path / "coco.pt"
    assert convert_cli.main([str(YOLO_DIR / "yolov4-tiny.weights"), "--names", str(YOLO_DIR / "coco.names"),
                             "--out", str(out)]) == 0
    det = Detector.from_checkpoint(out, device="cpu")
    for name, reference in OPENCV_REFERENCE.items():
        image = cv2.imread(str(YOLO_DIR / name))
        # the demo's own path: read, resize (bilinear, as Darknet), decode with scale_x_y 1.05
        pred = det.predict(str(YOLO_DIR / name))[0]
        assert_matches_reference(pred, reference, image.shape[:2])
    # spyolo demo writes the same detections
    assert demo_cli.main(["--weights", str(out), "--source", str(YOLO_DIR / "bus.jpg"), "--out",
                          str(tmp_path / "demo"), "--no-progress"]) == 0
    written = json.loads((tmp_path / "demo" / "bus.json").read_text())["detections"]
    assert [d["name"] for d in written][:4] == ["person", "person", "person", "bus"]


@needs_real
def test_one_training_epoch_on_raccoon_from_darknet(tmp_path):
    """A short epoch of SPYv4 on real RACCOON photos, started from the Darknet COCO weights."""
    from spyolo.train.trainer import Trainer

    root = REAL
    cfg = tiny_config(root, {
        "data.train_sets": "[RACCOON:trainval]", "data.test_sets": "[RACCOON:test]", "data.img_size": 96,
        "model.width": 1.0, "model.init_from": str(YOLO_DIR / "yolov4-tiny.weights"), "train.epochs": 1,
        "train.max_iters_per_epoch": 2, "train.batch_size": 2, "eval.max_images": 2, "eval.batch_size": 2,
        "train.out_dir": str(tmp_path), "data.workers": 0,
    })
    trainer = Trainer(cfg, run_dir=tmp_path / "run", progress=False)
    trainer.fit()
    assert (tmp_path / "run" / "weights" / "last.pt").is_file()
    text = (tmp_path / "run" / "transfer.txt").read_text()
    assert "Darknet weights" in text and "box and objectness channels of each anchor slot were copied" in text
    assert math.isfinite(trainer.history[-1]["loss"])


def test_converted_checkpoint_trains_exports_and_teaches(tmp_path, tiny_voc_root, capsys):
    """A converted Darknet model as model.init_from and train.distill_from of a run, and exported to ONNX."""
    from spyolo.cli import export as export_cli
    from spyolo.cli import train as train_cli
    from spyolo.export import OnnxDetector

    names = (tiny_voc_root / "SYNTH" / "classes.txt").read_text().split()
    model = random_twin(classes=len(names))
    weights = write_weights(tmp_path / "synth.weights", model)
    (tmp_path / "synth.cfg").write_text(cfg_text(QUARTER, len(names)))
    (tmp_path / "synth.names").write_text("\n".join(names) + "\n")
    out = tmp_path / "synth.pt"
    assert convert_cli.main([str(weights), "--out", str(out)]) == 0  # cfg and names found beside the weights
    from spyolo.config import save_config

    config = save_config(tiny_config(tiny_voc_root, {"train.epochs": 1, "model.scale_xy": 1.05}), tmp_path / "c.yaml")
    run_dir = tmp_path / "run"
    code = train_cli.main(["--config", str(config), "--run-dir", str(run_dir), "--no-progress",
                           f"model.init_from={out}", f"train.distill_from={out}"])
    assert code == 0, capsys.readouterr().err
    transfer = (run_dir / "transfer.txt").read_text()
    assert "0 skipped" in transfer  # same classes, same order: heads copied as they are
    # ONNX: the sidecar carries scale_xy and the bilinear resize; OnnxDetector agrees with Detector
    onnx_path = tmp_path / "synth.onnx"
    assert export_cli.main(["--weights", str(out), "--format", "onnx", "--out", str(onnx_path)]) == 0
    meta = json.loads(onnx_path.with_suffix(".json").read_text())
    assert meta["heads"]["scale_xy"] == 1.05 and meta["input"]["interpolation"] == "linear"
    image = (np.random.default_rng(1).random((90, 120, 3)) * 255).astype(np.uint8)
    # conf 0.28: above the random model's mass of near-equal low scores, where which of two
    # overlapping boxes survives NMS depends on the last bit
    onnx_det = OnnxDetector(onnx_path, conf=0.28, max_det=0)
    torch_det = Detector.from_checkpoint(out, device="cpu", conf=0.28, max_det=0)
    batch, _ = torch_det.preprocess([image[:, :, ::-1].copy()])
    heads, _states = onnx_det.step(batch.numpy(), onnx_det.zero_states(1))
    with torch.no_grad():
        for got, want in zip(heads, torch_det.model(batch)):
            np.testing.assert_allclose(got, want.numpy(), atol=1e-4)
    assert onnx_det.spec.scale_xy == torch_det.spec.scale_xy == 1.05
    assert onnx_det.interpolation == torch_det.interpolation == "linear"
    a, b = onnx_det.predict(image)[0], torch_det.predict(image)[0]
    # the detections themselves: the same boxes and scores from both runtimes
    assert len(a) == len(b) > 0
    gap = np.abs(a.boxes[:, None, :] - b.boxes[None, :, :]).max(axis=2)  # every pair of boxes
    assert gap.min(axis=1).max() < 1e-2 and gap.min(axis=0).max() < 1e-2
    np.testing.assert_allclose(np.sort(a.scores), np.sort(b.scores), atol=1e-5)
