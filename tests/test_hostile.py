"""Hostile input to the newer features: COCO JSON datasets, ONNX export and the ONNX detector,
``model.init_from`` / ``train.distill_from``, the Darknet import, the event readers, the demo on
odd images, and a training process killed with SIGKILL.

The cases of tests/test_faults.py are not repeated here. Each test runs the real command (in
this process, as tests/test_faults.py does, or as a subprocess where the process itself is the
subject: memory, SIGKILL) and checks the exit status, one ``error:`` line naming the file or key
and the problem, no traceback, inputs byte-identical and no run folder left by a failed start.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from test_faults import SYNTH, _photo, expect_error, run, snapshot, train, write_config

from conftest import ROOT, save_tiny_checkpoint, tiny_config
from spyolo.checkpoint import load_checkpoint
from spyolo.cli import convert as convert_cli
from spyolo.cli import demo as demo_cli
from spyolo.config import Config, apply_overrides

REAL = ROOT.parent / "shared" / "realdata"


@pytest.fixture
def data_root(tiny_voc_root: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny synthetic VOC set."""
    root = tmp_path / "data"
    shutil.copytree(tiny_voc_root, root)
    return root


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    cfg = Config()
    cfg.data.img_size = 64
    cfg.model.width = 0.25
    cfg.model.timesteps = 2
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt", cfg, ["cat", "dog", "bird"])


# --------------------------------------------------------------------------------- COCO


def _coco_file(data_root: Path) -> dict:
    from spyolo.data.coco import voc_split_to_coco

    return voc_split_to_coco(data_root / "SYNTH", "trainval", SYNTH)


def _coco_bytes(data: dict, case: str) -> bytes:
    """The file's bytes after the fault ``case``."""
    image, ann = data["images"][0], data["annotations"][0]
    if case == "malformed":
        return json.dumps(data).encode()[:-40]
    if case == "empty":
        return b""
    if case == "list-shaped":
        return json.dumps([data]).encode()
    if case == "not UTF-8":
        data["categories"][0]["name"] = "caf\udce9"  # written below as a Latin-1 byte
        return json.dumps(data, ensure_ascii=False).encode("utf-8", "surrogateescape")
    if case == "duplicate image id":
        data["images"].append(dict(data["images"][1], id=image["id"]))
    elif case == "image listed twice":
        data["images"].append(dict(image))
    elif case == "negative box":
        ann["bbox"] = [-20.0, -20.0, 10.0, 10.0]
    elif case == "negative width":
        ann["bbox"][2] = -ann["bbox"][2]
    elif case == "zero box":
        ann["bbox"][2:] = [0.0, 0.0]
    elif case == "NaN box":
        ann["bbox"][1] = math.nan  # json.dumps writes NaN, as Python tools do
    elif case == "infinite box":
        ann["bbox"][3] = math.inf
    elif case == "huge finite box":
        ann["bbox"][2] = 1e30
    elif case == "category id 0 unknown":
        ann["category_id"] = 0
    return json.dumps(data).encode()


COCO_CASES = {
    "malformed": "malformed JSON",
    "empty": "empty file (0 bytes), not a COCO annotation file",
    "list-shaped": "the top level is not a JSON object",
    "not UTF-8": "not UTF-8",
    "duplicate image id": "image id 1 appears more than once",
    "image listed twice": "image id 1 appears more than once",
    "negative box": "lies outside the image",
    "negative width": "has a box without area",
    "zero box": "has a box without area",
    "NaN box": "malformed bbox",
    "infinite box": "malformed bbox",
    "huge finite box": "lies outside the image",
    "category id 0 unknown": "has unknown category id 0",
}


@pytest.mark.parametrize("case", list(COCO_CASES))
def test_coco_json_faults_through_the_train_command(data_root: Path, tmp_path: Path, capsys, case: str) -> None:
    ann = tmp_path / "instances.json"
    ann.write_bytes(_coco_bytes(_coco_file(data_root), case))
    config = write_config(tmp_path, data_root, **{"data.train_sets": f"[coco:{ann}:SYNTH/JPEGImages]"})
    before = snapshot(data_root, ann, config)
    runs = tmp_path / "runs"
    expect_error(train(capsys, "--config", str(config), "--run-dir", str(runs / "r")), str(ann), COCO_CASES[case])
    assert snapshot(data_root, ann, config) == before and not runs.exists()


def test_coco_category_id_0_and_sparse_ids_are_classes(data_root: Path, tmp_path: Path) -> None:
    """Category ids 0, 5 and 90 (COCO's own ids start at 1 and have gaps) map to classes 0..2."""
    from spyolo.data.coco import COCOSource
    from spyolo.data.dataset import DetectionDataset

    data = _coco_file(data_root)
    ids = {1: 0, 2: 5, 3: 90}
    for cat in data["categories"]:
        cat["id"] = ids.get(cat["id"], 100 + cat["id"])
    for ann in data["annotations"]:
        ann["category_id"] = ids.get(ann["category_id"], 100 + ann["category_id"])
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    sets = [COCOSource(path, data_root / "SYNTH" / "JPEGImages")]
    names = sets[0].declared_classes()
    assert names == SYNTH
    ds = DetectionDataset(sets, names)
    assert ds.category_ids[0] == 0 and ds.category_ids[1] == 5 and ds.category_ids[2] == 90
    labels = np.concatenate([a.labels() for a in ds.annotations])
    first = [a["category_id"] for a in data["annotations"]]
    back = {v: k for k, v in ds.category_ids.items()}
    assert sorted(labels.tolist()) == sorted(back[c] for c in first)
    assert 0 in labels.tolist()  # the class of category id 0 keeps its boxes


# -------------------------------------------------------------------------------- ONNX


@pytest.fixture(scope="module")
def onnx_model(ckpt: Path, tmp_path_factory) -> Path:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from spyolo.export import export_onnx

    return export_onnx(ckpt, tmp_path_factory.mktemp("onnx") / "model.onnx")


def test_truncated_onnx_model(onnx_model: Path, tmp_path: Path, capsys) -> None:
    model = tmp_path / "model.onnx"
    data = onnx_model.read_bytes()
    model.write_bytes(data[: len(data) // 2])
    shutil.copy(onnx_model.with_suffix(".json"), model.with_suffix(".json"))
    image = _photo(tmp_path / "photo.png")
    before = snapshot(tmp_path)
    expect_error(run(demo_cli, ["--weights", str(model), "--source", str(image), "--out", str(tmp_path / "out"),
                                "--no-progress"], capsys), str(model), "onnxruntime cannot load this model")
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()


def test_onnx_sidecar_of_another_export(ckpt: Path, onnx_model: Path, tmp_path: Path, capsys) -> None:
    """A sidecar copied from the export of another model (wider, 8 classes) beside this graph."""
    from spyolo.export import export_onnx

    cfg = Config()
    cfg.data.img_size = 64
    cfg.model.width = 0.5
    cfg.model.timesteps = 2
    other = export_onnx(save_tiny_checkpoint(tmp_path / "wide.pt", cfg, SYNTH), tmp_path / "wide" / "wide.onnx")
    model = tmp_path / "model.onnx"
    shutil.copy(onnx_model, model)
    shutil.copy(other.with_suffix(".json"), model.with_suffix(".json"))
    image = _photo(tmp_path / "photo.png")
    before = snapshot(model, model.with_suffix(".json"), image)
    expect_error(run(demo_cli, ["--weights", str(model), "--source", str(image), "--out", str(tmp_path / "out"),
                                "--no-progress"], capsys), str(model.with_suffix(".json")), "sidecar key")
    assert snapshot(model, model.with_suffix(".json"), image) == before and not (tmp_path / "out").exists()


# ------------------------------------------------------------------ init_from / distill_from


@pytest.fixture(scope="module")
def odd_sources(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("odd")
    wide = tiny_config(folder, {"model.width": 0.5})
    save_tiny_checkpoint(folder / "wide.pt", wide, SYNTH)
    ann = tiny_config(folder, {"model.kind": "ann"})
    save_tiny_checkpoint(folder / "ann5.pt", ann, SYNTH[:5])
    save_tiny_checkpoint(folder / "ann96.pt", tiny_config(folder, {"model.kind": "ann", "data.img_size": 96}), SYNTH)
    return {p.stem: p for p in folder.iterdir()}


@pytest.mark.parametrize("override, needles", [
    ("model.init_from={wide}", ["model.init_from", "wide.pt", "width"]),
    ("train.distill_from={ann5}",
     ["train.distill_from", "ann5.pt", "the teacher's num_classes (5) differ from the model's (8)"]),
])
def test_sources_of_another_shape_are_refused(data_root: Path, tmp_path: Path, capsys, odd_sources,
                                              override: str, needles: list[str]) -> None:
    config = write_config(tmp_path, data_root)
    before = snapshot(data_root, config, *odd_sources.values())
    runs = tmp_path / "runs"
    override = override.format(**{k: str(v) for k, v in odd_sources.items()})
    expect_error(train(capsys, "--config", str(config), "--run-dir", str(runs / "r"), override), *needles)
    assert not runs.exists()
    assert snapshot(data_root, config, *odd_sources.values()) == before


def test_teacher_of_another_input_size_is_a_warning(data_root: Path, tmp_path: Path, capsys, odd_sources) -> None:
    config = write_config(tmp_path, data_root, **{"train.epochs": 1, "train.max_iters_per_epoch": 1,
                                                  "model.kind": "spyv4"})
    before = snapshot(odd_sources["ann96"])
    code, _out, err = train(capsys, "--config", str(config), "--run-dir", str(tmp_path / "r"),
                            f"train.distill_from={odd_sources['ann96']}")
    assert code == 0, err
    assert "the teacher was trained at 96 px, the model trains at 64 px (data.img_size)" in err
    assert snapshot(odd_sources["ann96"]) == before


# ------------------------------------------------------------------------------ Darknet


def _darknet_weights(path: Path) -> Path:
    from test_darknet import random_twin, write_weights

    return write_weights(path, random_twin())


@pytest.mark.parametrize("fault, needle", [
    ("truncated", "truncated"),
    ("trailing", "trailing"),
    ("empty", "shorter than"),
    ("nan", "NaN or infinite"),
])
def test_darknet_weights_faults_through_convert_and_init_from(data_root: Path, tmp_path: Path, capsys,
                                                             fault: str, needle: str) -> None:
    weights = _darknet_weights(tmp_path / "net.weights")
    data = weights.read_bytes()
    if fault == "truncated":
        weights.write_bytes(data[: len(data) - 1000])
    elif fault == "trailing":
        weights.write_bytes(data + b"\0" * 1000)
    elif fault == "empty":
        weights.write_bytes(b"")
    else:
        arr = bytearray(data)
        arr[100:104] = np.array([np.inf], "<f4").tobytes()
        weights.write_bytes(bytes(arr))
    before = snapshot(weights)
    out = tmp_path / "net.pt"
    expect_error(run(convert_cli, [str(weights), "--out", str(out)], capsys), str(weights), needle)
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))
    config = write_config(tmp_path, data_root, **{"model.kind": "ann"})
    runs = tmp_path / "runs"
    expect_error(train(capsys, "--config", str(config), "--run-dir", str(runs / "r"), f"model.init_from={weights}"),
                 "model.init_from", str(weights), needle)
    assert not runs.exists() and snapshot(weights) == before


@pytest.mark.skipif(not (REAL / "yolov4-tiny" / "yolov4-tiny.weights").is_file(),
                    reason="../shared/realdata (the original YOLOv4-tiny files) is not present")
def test_real_darknet_weights_with_a_wrong_cfg(tmp_path: Path, capsys) -> None:
    """The original 80-class weights with a cfg edited to 20 classes: refused, named, nothing written."""
    weights = REAL / "yolov4-tiny" / "yolov4-tiny.weights"
    cfg = REAL / "yolov4-tiny" / "yolov4-tiny.cfg"
    if not cfg.is_file():
        pytest.skip("no yolov4-tiny.cfg beside the weights")
    edited = tmp_path / "twenty.cfg"
    edited.write_text(cfg.read_text().replace("classes=80", "classes=20").replace("filters=255", "filters=75"))
    before = snapshot(weights, edited)
    out = tmp_path / "m.pt"
    expect_error(run(convert_cli, [str(weights), "--cfg", str(edited), "--out", str(out)], capsys), str(weights))
    assert not out.exists() and snapshot(weights, edited) == before


# ----------------------------------------------------------------------------- events


@pytest.fixture(scope="module")
def event_ckpt(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("evckpt")
    cfg = apply_overrides(Config(), [
        "data.train_sets=[gen1:S/train]", "data.test_sets=[gen1:S/test]", "data.img_size=64",
        "data.event_window_ms=40", "data.event_sensor=[64, 48]", "model.input=events", "model.width=0.25",
        "model.timesteps=2"])
    from spyolo.checkpoint import save_checkpoint
    from spyolo.config import config_to_dict
    from spyolo.models import build_model

    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes=2)
    return save_checkpoint({"model": model.state_dict(), "config": config_to_dict(cfg),
                            "class_names": ["circle", "square"], "epoch": 0}, folder / "events.pt")


def _dat(path: Path) -> Path:
    from spyolo.events.arrays import SensorSize, make_events
    from spyolo.events.dat import write_dat

    rng = np.random.default_rng(0)
    n = 400
    ev = make_events(np.sort(rng.integers(0, 200_000, n)), rng.integers(0, 64, n), rng.integers(0, 48, n),
                     rng.integers(0, 2, n))
    return write_dat(path, ev, SensorSize(64, 48))


def _raw(path: Path) -> Path:
    words = []
    for high in range(1, 5):  # TIME_HIGH words (bits 33..6 of the time), then 50 CD events each
        words += [(0x8 << 28) | high] + [(0x1 << 28) | (j << 22) | (j % 64 << 11) | (j % 48) for j in range(50)]
    path.write_bytes(b"% evt 2.0\n% format EVT2;height=48;width=64\n% end\n" + np.array(words, "<u4").tobytes())
    return path


EVENT_FAULTS = {
    "dat truncated": ("rec_td.dat", lambda b: b[:-5], "truncated"),
    "dat garbage": ("rec_td.dat", lambda b: bytes(range(256)) * 4, "no '%' header"),
    "dat header only": ("rec_td.dat", lambda b: b[: b.index(b"% Height 48\n") + 12], "ends after its header"),
    "dat wrong event size": ("rec_td.dat", lambda b: b.replace(bytes([0, 8]), bytes([0, 12]), 1),
                             "event size byte is 12"),
    "dat out of order": ("rec_td.dat", lambda b: b[:-16] + b[-8:] + b[-16:-8], "out of time order"),
    "raw truncated": ("rec.raw", lambda b: b[:-1], "truncated"),
    "raw garbage": ("rec.raw", lambda b: bytes(range(256)) * 4, "header"),
    "raw wrong encoding": ("rec.raw", lambda b: b.replace(b"evt 2.0", b"evt 4.0").replace(b"EVT2", b"EVT4"),
                           "spyolo decodes EVT 2.0 and EVT 3.0"),
    "raw empty": ("rec.raw", lambda b: b"", "no '%' header"),
}


@pytest.mark.parametrize("case", list(EVENT_FAULTS))
def test_demo_on_damaged_event_recordings(event_ckpt: Path, tmp_path: Path, capsys, case: str) -> None:
    name, damage, needle = EVENT_FAULTS[case]
    path = (_dat if name.endswith(".dat") else _raw)(tmp_path / name)
    path.write_bytes(damage(path.read_bytes()))
    before = snapshot(path)
    out = tmp_path / "out"
    expect_error(run(demo_cli, ["--weights", str(event_ckpt), "--source", str(path), "--out", str(out),
                                "--device", "cpu", "--no-progress"], capsys), str(path), needle)
    assert snapshot(path) == before and (not out.exists() or not any(out.iterdir()))


@pytest.mark.skipif(not (REAL / "events" / "evt3_sample.raw").is_file(), reason="needs ../shared/realdata/events")
@pytest.mark.parametrize("damage, needle", [
    (lambda b: b[:-1], "truncated"),
    (lambda b: b.replace(b"% evt 3.0", b"% evt 9.9", 1), "spyolo decodes EVT 2.0 and EVT 3.0"),
])
def test_demo_on_a_damaged_real_evt3_recording(event_ckpt: Path, tmp_path: Path, capsys, damage, needle: str) -> None:
    path = tmp_path / "sample.raw"
    path.write_bytes(damage((REAL / "events" / "evt3_sample.raw").read_bytes()))
    before = snapshot(path)
    out = tmp_path / "out"
    expect_error(run(demo_cli, ["--weights", str(event_ckpt), "--source", str(path), "--out", str(out),
                                "--device", "cpu", "--no-progress"], capsys), str(path), needle)
    assert snapshot(path) == before and not out.exists()


def test_demo_on_a_good_event_recording_runs(event_ckpt: Path, tmp_path: Path, capsys) -> None:
    """The control of the case above: the undamaged files run."""
    for name in ("rec_td.dat", "rec.raw"):
        path = (_dat if name.endswith(".dat") else _raw)(tmp_path / name)
        code, _out, err = run(demo_cli, ["--weights", str(event_ckpt), "--source", str(path), "--out",
                                         str(tmp_path / f"out_{path.suffix[1:]}"), "--device", "cpu",
                                         "--no-progress"], capsys)
        assert code == 0, err


# ------------------------------------------------------------------------------- demo


_BOMB_SCRIPT = textwrap.dedent("""
    import resource, sys
    from spyolo.cli import demo
    small, huge, *argv = sys.argv[1:]
    assert demo.main(["--source", small, "--out", small + ".out", *argv]) == 0  # torch, the model, one image
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code = demo.main(["--source", huge, "--out", huge + ".out", *argv])
    print("peak_growth_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base, file=sys.stderr)
    sys.exit(code)
""")


def _huge_png(path: Path, width: int, height: int) -> Path:
    """A valid PNG of ``width`` x ``height`` black pixels (a few hundred kB: zlib packs the zero rows)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp = zlib.compressobj(9)
    rows = max(1, 2**24 // (1 + width))  # compressed a block of rows at a time
    block = b"\0" * ((1 + width) * rows)  # filter byte + grey pixels, per row
    body = b"".join(comp.compress(block[: (1 + width) * min(rows, height - r)]) for r in range(0, height, rows))
    body += comp.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def test_demo_on_a_20000_pixel_png_stays_bounded(ckpt: Path, tmp_path: Path) -> None:
    """A 380 kB PNG of 20000x20000 pixels: refused from its header, before OpenCV decodes it (which
    took 4.4 GB and 50 s), in a process whose peak memory grows by less than 100 MiB."""
    image = _huge_png(tmp_path / "huge.png", 20000, 20000)
    small = _photo(tmp_path / "small.png")
    before = snapshot(image)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _BOMB_SCRIPT, str(small), str(image), "--weights", str(ckpt),
                           "--device", "cpu", "--no-progress"], capture_output=True, text=True, env=env, timeout=300)
    err, _, growth = proc.stderr.rpartition("peak_growth_kib")
    assert growth, proc.stderr
    expect_error((proc.returncode, proc.stdout, err), str(image), "the image is 20000x20000 pixels",
                 "more than the 134 megapixels")
    assert int(growth) / 1024 < 100, growth  # the decoded image alone would be 1.1 GiB (400 M x 3 bytes)
    assert snapshot(image) == before and not (tmp_path / "huge.png.out").exists()


def test_images_just_under_the_pixel_limit_are_read(tmp_path: Path) -> None:
    from spyolo.data.images import MAX_IMAGE_PIXELS, read_image_file
    from spyolo.errors import ImageReadError

    ok = _huge_png(tmp_path / "wide.png", 2**17, MAX_IMAGE_PIXELS // 2**17 // 64)  # a 2-Mpx panorama
    assert read_image_file(ok).shape == (MAX_IMAGE_PIXELS // 2**17 // 64, 2**17, 3)
    tall = _huge_png(tmp_path / "tall.png", 2, MAX_IMAGE_PIXELS // 2 + 1)
    with pytest.raises(ImageReadError, match=f"tall.png: the image is 2x{MAX_IMAGE_PIXELS // 2 + 1} pixels"):
        read_image_file(tall)
    import io
    import struct

    from PIL import Image

    buffer = io.BytesIO()  # other formats: the size from Pillow's header reader
    Image.new("L", (1, 1)).save(buffer, "GIF")
    gif = bytearray(buffer.getvalue())
    gif[6:10] = struct.pack("<HH", 12000, 12000)  # the logical screen a GIF bomb claims
    (tmp_path / "bomb.gif").write_bytes(bytes(gif))
    with pytest.raises(ImageReadError, match="bomb.gif: the image is 12000x12000 pixels"):
        read_image_file(tmp_path / "bomb.gif")


# ------------------------------------------------------------------- SIGKILL and --resume


_TRAIN_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from spyolo.cli import train
    where, _, count = os.environ.get("KILL_AT", "").partition(":")
    calls = []
    if where == "step":  # SIGKILL in the middle of an epoch, after training step `count`
        from spyolo.train.trainer import Trainer
        real_build = Trainer._build
        def build(self, resume):
            real_build(self, resume)
            real_step = self.parts.step
            def step(images, targets):
                out = real_step(images, targets)
                calls.append(1)
                if len(calls) == int(count):
                    os.kill(os.getpid(), signal.SIGKILL)
                return out
            self.parts.step = step
        Trainer._build = build
    elif where == "save":  # SIGKILL while the `count`-th last.pt is written (its bytes out, not yet renamed)
        import spyolo.utils.io as io
        real_fsync = io.os.fsync
        def fsync(fd):
            if ".last.pt." in os.readlink(f"/proc/self/fd/{fd}"):
                calls.append(1)
                if len(calls) == int(count):
                    os.kill(os.getpid(), signal.SIGKILL)
            return real_fsync(fd)
        io.os.fsync = fsync
    sys.exit(train.main(sys.argv[1:]))
""")


def _train_process(argv: list[str], kill_at: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1", "KILL_AT": kill_at}
    return subprocess.run([sys.executable, "-c", _TRAIN_SCRIPT, *argv, "--no-progress"], capture_output=True,
                          text=True, env=env, timeout=600)


def _results(folder: Path) -> list[dict]:
    import csv

    with (folder / "results.csv").open() as f:
        return [{k: r[k] for k in ("epoch", "loss", "box", "obj", "cls", "map_voc07")} for r in csv.DictReader(f)]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finds the file being written through /proc")
def test_sigkill_during_an_epoch_and_during_a_save_then_resume(data_root: Path, tmp_path: Path) -> None:
    """Two real SIGKILLs, one in the middle of epoch 2 and one while epoch 2's last.pt is being
    written; ``--resume`` then ends with the results and weights of an uninterrupted run."""
    config = write_config(tmp_path, data_root, **{"train.epochs": 2, "train.max_iters_per_epoch": 2,
                                                  "eval.max_images": 2})
    before = snapshot(data_root, config)
    straight = tmp_path / "straight"
    proc = _train_process(["--config", str(config), "--run-dir", str(straight)])
    assert proc.returncode == 0, proc.stderr
    for kill_at in ("step:3", "save:3"):  # last.pt is written twice per epoch (before and after the evaluation)
        run_dir = tmp_path / kill_at.replace(":", "")
        proc = _train_process(["--config", str(config), "--run-dir", str(run_dir)], kill_at)
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        assert load_checkpoint(run_dir / "weights" / "last.pt")["epoch"] == 0  # epoch 1 is all that was saved
        if kill_at.startswith("save"):
            assert list((run_dir / "weights").glob(".last.pt.*.tmp"))  # the write the kill cut short
        proc = _train_process(["--resume", str(run_dir)])
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        assert not list((run_dir / "weights").glob(".*.tmp"))
        assert _results(run_dir) == _results(straight), kill_at
        for name in ("last.pt", "best.pt"):
            a, b = load_checkpoint(run_dir / "weights" / name), load_checkpoint(straight / "weights" / name)
            assert a["epoch"] == b["epoch"] and a["best"] == b["best"]
            for key, value in a["model"].items():
                assert torch.equal(value, b["model"][key]), (kill_at, name, key)
            for key in ("optimizer", "scheduler"):
                assert repr(a[key]) == repr(b[key]), (kill_at, name, key)
    assert snapshot(data_root, config) == before
