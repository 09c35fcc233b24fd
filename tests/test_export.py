"""ONNX export (spyolo.export): parity with PyTorch at every timestep, OnnxDetector against
Detector, the sidecar, the ANN twin, the mean read-out, and the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx", reason="the export extra is not installed (pip install 'spyolo[export]')")
pytest.importorskip("onnxruntime", reason="the export extra is not installed (pip install 'spyolo[export]')")

import onnx  # noqa: E402

from conftest import save_tiny_checkpoint  # noqa: E402
from spyolo.checkpoint import load_model  # noqa: E402
from spyolo.config import Config  # noqa: E402
from spyolo.export import ExportError, OnnxDetector, export_onnx, read_sidecar  # noqa: E402
from spyolo.inference import Detector, Prediction  # noqa: E402
from spyolo.snn import reset_states  # noqa: E402
from spyolo.snn.ltc import ltc_layers  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["cat", "dog", "bird"]
CONF = 0.05  # low enough for the untrained tiny model to produce boxes
T = 3


def _config(**over) -> Config:
    cfg = Config()
    cfg.data.img_size = 64
    cfg.model.width = 0.25
    cfg.model.timesteps = T
    for key, value in over.items():
        section, name = key.split("__")
        setattr(getattr(cfg, section), name, value)
    return cfg


def _export(folder: Path, name: str, **over) -> tuple[Path, Path]:
    ckpt = save_tiny_checkpoint(folder / f"{name}.pt", _config(**over), CLASSES)
    return ckpt, export_onnx(ckpt, folder / f"{name}.onnx")


@pytest.fixture(scope="module")
def spyv4(tmp_path_factory) -> tuple[Path, Path]:
    return _export(tmp_path_factory.mktemp("spyv4"), "spyv4")


@pytest.fixture(scope="module")
def mean_readout(tmp_path_factory) -> tuple[Path, Path]:
    """Mean read-out, and the letterbox resize so both resize modes are covered."""
    return _export(tmp_path_factory.mktemp("mean"), "mean", model__readout="mean", data__eval_resize="letterbox")


@pytest.fixture(scope="module")
def ann(tmp_path_factory) -> tuple[Path, Path]:
    return _export(tmp_path_factory.mktemp("ann"), "ann", model__kind="ann")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """An odd-sized BGR image with shapes on a noisy background."""
    import cv2

    rng = np.random.default_rng(0)
    image = rng.integers(0, 120, (203, 317, 3), dtype=np.uint8)
    cv2.rectangle(image, (20, 30), (120, 160), (40, 200, 240), -1)
    cv2.circle(image, (230, 90), 55, (250, 80, 30), -1)
    return image


def _step_parity(ckpt: Path, onnx_path: Path, batch: int = 3) -> dict[str, float]:
    """Run PyTorch and onnxruntime side by side for T steps from zero states; assert agreement.

    A spike is a threshold test, so float noise in the convolutions (about 1e-6) could flip one
    whose membrane sits within that distance of the threshold; its membrane then differs by
    about the threshold (reset to 0 in one runtime, not in the other), and so may the neurons
    it feeds. Such elements are counted as flipped and must stay a tiny fraction; every other
    membrane must agree to 1e-4, and the heads to 1e-4 when nothing flipped. Returns the
    largest differences seen (per output kind).
    """
    model = load_model(ckpt).model.eval()
    layers = [layer for _name, layer in ltc_layers(model)]
    det = OnnxDetector(onnx_path, threads=1)
    torch.manual_seed(1)
    images = torch.rand(batch, 3, 64, 64)  # batch 3: the graph was traced with 2
    states = det.zero_states(batch)
    worst = {"head1": 0.0, "head2": 0.0, "membrane": 0.0, "readout": 0.0, "flipped": 0.0}
    reset_states(model)
    with torch.no_grad():
        for t in range(1, T + 1):
            expected = model(images)
            heads, states = det.step(images.numpy(), states)
            flipped = total = 0
            for i, layer in enumerate(layers):
                diff = np.abs(states[f"v_{i}"] - layer.v.numpy())
                jumped = diff > 1e-3
                flipped += int(jumped.sum())
                total += diff.size
                if (~jumped).any():
                    worst["membrane"] = max(worst["membrane"], float(diff[~jumped].max()))
            worst["flipped"] = max(worst["flipped"], flipped / total)
            assert flipped / total <= 1e-4, f"step {t}: {flipped} of {total} membranes disagree (flipped spikes)"
            assert worst["membrane"] <= 1e-4
            for name, got, want in zip(("head1", "head2"), heads, expected):
                assert got.shape == tuple(want.shape)
                diff = float(np.abs(got - want.numpy()).max())
                worst[name] = max(worst[name], diff)
                if flipped == 0:
                    assert diff <= 1e-4, f"step {t}: {name} differs by {diff}"
                else:  # a flipped spike moves the heads near it only
                    assert float(np.abs(got - want.numpy()).mean()) <= 1e-3
            readout = getattr(model, "mean_readout", None)
            if readout is not None:
                for name, value in (("readout_sum_s32", readout.sum_s32), ("readout_sum_s16", readout.sum_s16)):
                    worst["readout"] = max(worst["readout"], float(np.abs(states[name] - value.numpy()).max()))
                assert np.array_equal(states["readout_steps"], np.full((batch, 1), float(t), np.float32))
    if worst["flipped"] == 0:
        assert worst["readout"] <= 1e-4
    return worst


def test_onnx_step_matches_pytorch_at_every_timestep(spyv4) -> None:
    # Measured (torch 2.14.1, onnxruntime 1.32.0, x86 CPU, T=3, batch 3): no spike flipped;
    # heads equal to the last bit (max abs diff 0.0 at every step), membranes within 3.3e-6.
    _step_parity(*spyv4)


def test_mean_readout_export_matches_pytorch(mean_readout) -> None:
    # Measured: as without the read-out (heads 0.0, membranes 3.3e-6), read-out sums 0.0.
    ckpt, onnx_path = mean_readout
    meta = read_sidecar(onnx_path)
    names = [s["input"] for s in meta["states"]]
    assert names == [f"v_{i}" for i in range(19)] + ["readout_sum_s32", "readout_sum_s16", "readout_steps"]
    assert meta["model"]["readout"] == "mean"
    assert [s["shape"] for s in meta["states"][19:]] == [[24, 2, 2], [24, 4, 4], [1]]
    _step_parity(ckpt, onnx_path)


def _assert_same(a: Prediction, b: Prediction, box_atol: float = 1e-4, score_atol: float = 1e-4) -> None:
    """Same detections (label, score, box), matched one to one: an untrained model gives many
    equal scores, whose order is not part of the contract."""
    assert a.image_size == b.image_size and a.class_names == b.class_names
    assert len(a) == len(b) and len(a) > 0
    free = list(range(len(b)))
    for box, score, label in zip(a.boxes, a.scores, a.labels):
        match = next((j for j in free if b.labels[j] == label and abs(b.scores[j] - score) <= score_atol
                      and np.abs(b.boxes[j] - box).max() <= box_atol), None)
        assert match is not None, f"no match for {label} {score} {box}"
        free.remove(match)


# Box tolerance in original-image pixels (a 203 x 317 image). Measured: SPYv4 (with either
# read-out) gives the same boxes and scores to the last bit, its heads being equal; the ANN twin
# carries analog values through all its layers, where onnxruntime's kernels round differently
# (heads within 8.6e-6): boxes within 2.4e-4 px, scores within 9e-7.
BOX_ATOL = {"spyv4": 1e-4, "mean_readout": 1e-4, "ann": 2e-3}


@pytest.mark.parametrize("which", ["spyv4", "mean_readout", "ann"])
def test_onnx_detector_gives_the_detectors_predictions(which: str, request, photo: np.ndarray) -> None:
    ckpt, onnx_path = request.getfixturevalue(which)
    box_atol = BOX_ATOL[which]
    torch_det = Detector.from_checkpoint(ckpt, device="cpu", conf=CONF)
    onnx_det = OnnxDetector(onnx_path, conf=CONF, threads=1)
    assert (onnx_det.img_size, onnx_det.steps_per_image, onnx_det.resize, onnx_det.max_det, onnx_det.nms) == (
        torch_det.img_size, torch_det.steps_per_image, torch_det.resize, torch_det.max_det, torch_det.nms)
    flipped = photo[::-1].copy()
    ours, theirs = onnx_det.predict([photo, flipped]), torch_det.predict([photo, flipped])
    for a, b in zip(ours, theirs):
        _assert_same(a, b, box_atol)
    # streaming: state kept across frames, k steps per frame after a warm-up
    ours_stream, theirs_stream = onnx_det.stream(1, warmup=2), torch_det.stream(1, warmup=2)
    for frame in (photo, flipped, photo):
        _assert_same(ours_stream.step(frame), theirs_stream.step(frame), box_atol)


def test_an_export_with_the_earlier_readout_state_names_still_runs(mean_readout, photo, tmp_path) -> None:
    """Exports made before the read-out's states were named by stride (``readout_sum13`` for the
    stride-32 head, ``readout_sum26`` for stride 16) run as before: the runner takes the state
    names from the sidecar."""
    ckpt, onnx_path = mean_readout
    renames = {"readout_sum_s32": "readout_sum13", "readout_sum_s16": "readout_sum26"}
    renames.update({f"{k}_next": f"{v}_next" for k, v in list(renames.items())})
    graph = onnx.load(str(onnx_path))
    for value in [*graph.graph.input, *graph.graph.output]:
        value.name = renames.get(value.name, value.name)
    for node in graph.graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    old = tmp_path / "old.onnx"
    onnx.save(graph, str(old))
    meta = json.loads(onnx_path.with_suffix(".json").read_text())
    for state in meta["states"]:
        state["input"], state["output"] = renames.get(state["input"], state["input"]), renames.get(
            state["output"], state["output"])
        state["module"] = state["module"].replace("sum_s32", "sum13").replace("sum_s16", "sum26")
    old.with_suffix(".json").write_text(json.dumps(meta))
    assert "readout_sum13" in [s["input"] for s in read_sidecar(old)["states"]]
    _assert_same(OnnxDetector(old, conf=CONF).predict(photo)[0], Detector.from_checkpoint(
        ckpt, device="cpu", conf=CONF).predict(photo)[0])


def test_sidecar(spyv4) -> None:
    ckpt, onnx_path = spyv4
    meta = json.loads(onnx_path.with_suffix(".json").read_text())
    import spyolo

    assert meta["format"] == "spyolo-onnx" and meta["spyolo_version"] == spyolo.__version__
    assert meta["class_names"] == CLASSES and meta["timesteps"] == T
    assert meta["model"] == {"kind": "spyv4", "spiking": True, "width": 0.25, "readout": "last"}
    assert meta["input"]["shape"] == [3, 64, 64] and meta["input"]["resize"] == "stretch"
    heads = meta["heads"]
    assert heads["strides"] == [32, 16] and heads["masks"] == [[3, 4, 5], [1, 2, 3]]
    assert heads["anchor_ref_size"] == 416 and heads["anchors_ref"][0] == [10.0, 14.0]
    np.testing.assert_allclose(heads["anchors"], np.array(heads["anchors_ref"]) * 64 / 416, rtol=1e-6)
    assert meta["thresholds"] == {"demo": {"conf": 0.25, "nms": 0.45}, "eval": {"conf": 0.001, "nms": 0.5},
                                  "max_det": 300}
    assert meta["state_init"] == "zero" and meta["trained_state_init"] == "zero"
    model = load_model(ckpt).model
    assert [s["module"] for s in meta["states"]] == [name for name, _layer in ltc_layers(model)]
    assert meta["states"][0] == {"input": "v_0", "output": "v_0_next", "module": "conv1", "shape": [8, 32, 32]}
    # the graph agrees with the sidecar: names, per-image shapes, a dynamic batch axis, opset >= 17
    graph = onnx.load(str(onnx_path))
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 17

    def dims(value) -> list:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    inputs = {i.name: dims(i) for i in graph.graph.input}
    outputs = {o.name: dims(o) for o in graph.graph.output}
    assert list(inputs) == ["images"] + [f"v_{i}" for i in range(19)]
    assert list(outputs) == ["head1", "head2"] + [f"v_{i}_next" for i in range(19)]
    assert inputs["images"] == ["batch", 3, 64, 64] and outputs["head1"] == ["batch", 24, 2, 2]
    for state in meta["states"]:
        assert inputs[state["input"]] == outputs[state["output"]] == ["batch", *state["shape"]]
    assert all(i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for i in graph.graph.input)


def test_ann_twin_is_a_plain_graph(ann) -> None:
    ckpt, onnx_path = ann
    meta = read_sidecar(onnx_path)
    assert meta["states"] == [] and meta["model"]["spiking"] is False
    graph = onnx.load(str(onnx_path)).graph
    assert [i.name for i in graph.input] == ["images"] and [o.name for o in graph.output] == ["head1", "head2"]
    model = load_model(ckpt).model.eval()
    torch.manual_seed(0)
    images = torch.rand(2, 3, 64, 64)
    heads, states = OnnxDetector(onnx_path, threads=1).step(images.numpy(), {})
    with torch.no_grad():
        expected = model(images)
    assert states == {}
    for got, want in zip(heads, expected):  # measured: 4.4e-6 (head1), 8.6e-6 (head2)
        np.testing.assert_allclose(got, want.numpy(), atol=1e-4, rtol=0)


def test_uniform_initial_state_needs_zero_init(tmp_path: Path) -> None:
    ckpt = save_tiny_checkpoint(tmp_path / "u.pt", _config(model__state_init="uniform"), CLASSES)
    with pytest.raises(ExportError, match=r"u\.pt: model\.state_init=uniform: .*--zero-init"):
        export_onnx(ckpt, tmp_path / "u.onnx")
    assert not (tmp_path / "u.onnx").exists() and not (tmp_path / "u.json").exists()
    export_onnx(ckpt, tmp_path / "u.onnx", allow_zero_init=True)
    meta = read_sidecar(tmp_path / "u.onnx")
    assert (meta["state_init"], meta["trained_state_init"]) == ("zero", "uniform")


def _export_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    from spyolo.cli.export import main

    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_export_and_demo_commands(spyv4, photo: np.ndarray, tmp_path: Path, capsys) -> None:
    import cv2

    ckpt, _ = spyv4
    out = tmp_path / "model.onnx"
    code, stdout, _err = _export_cli(["--weights", str(ckpt), "--format", "onnx", "--out", str(out)], capsys)
    assert code == 0 and f"wrote {out}" in stdout and out.is_file() and out.with_suffix(".json").is_file()
    code, _out, err = _export_cli(["--weights", str(ckpt), "--format", "onnx", "--out", str(out)], capsys)
    assert code == 2 and err.startswith(f"error: {out}: already exists") and err.count("\n") == 1
    out.unlink()  # the sidecar alone is enough to refuse
    code, _out, err = _export_cli(["--weights", str(ckpt), "--format", "onnx", "--out", str(out)], capsys)
    assert code == 2 and err.startswith(f"error: {out.with_suffix('.json')}: already exists")
    code, _out, _err = _export_cli(
        ["--weights", str(ckpt), "--format", "onnx", "--out", str(out), "--exist-ok"], capsys
    )
    assert code == 0 and out.is_file()

    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), photo)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "demo.py"), "--weights", str(out), "--source", str(image),
         "--out", str(tmp_path / "demo"), "--conf", str(CONF), "--no-progress"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "onnxruntime (CPU)" in proc.stdout and "T=3" in proc.stdout
    records = json.loads((tmp_path / "demo" / "photo.json").read_text())["detections"]
    expected = Detector.from_checkpoint(ckpt, device="cpu", conf=CONF).predict(str(image))[0]
    from_json = Prediction(
        boxes=np.array([d["box"] for d in records], np.float32), scores=np.array([d["score"] for d in records]),
        labels=np.array([d["label"] for d in records]), class_names=tuple(CLASSES), image_size=expected.image_size,
    )
    _assert_same(from_json, expected, box_atol=2e-3, score_atol=2e-6)  # the JSON rounds (1/1000 px, 6 digits)


def test_command_errors(spyv4, tmp_path: Path, capsys, monkeypatch) -> None:
    from spyolo.cli.demo import main as demo

    ckpt, onnx_path = spyv4
    image = tmp_path / "x.png"
    import cv2

    cv2.imwrite(str(image), np.zeros((40, 50, 3), np.uint8))

    def one_line(code: int, text: str) -> str:
        assert code == 2 and text.startswith("error: ") and text.count("\n") == 1, text
        return text

    cases = [
        (["--format", "onnx", "--out", str(tmp_path / "m.pt")], "m.pt: an ONNX export must end in .onnx"),
        (["--format", "onnx", "--half", "--out", str(tmp_path / "m.onnx")], "--half applies to --format pt only"),
        (["--zero-init", "--out", str(tmp_path / "m2.pt")], "--zero-init and --opset apply to --format onnx only"),
        (["--format", "onnx", "--opset", "13", "--out", str(tmp_path / "m.onnx")], "opset 13 is too old"),
    ]
    for extra, message in cases:
        code, _out, err = _export_cli(["--weights", str(ckpt), *extra], capsys)
        assert message in one_line(code, err)
    code, _out, err = _export_cli(["--weights", str(tmp_path / "none.pt"), "--format", "onnx"], capsys)
    assert "none.pt: checkpoint not found" in one_line(code, err)

    def run_demo(weights: Path, *extra: str) -> str:
        code = demo(["--weights", str(weights), "--source", str(image), "--out", str(tmp_path / "d"), "--no-progress",
                     *extra])
        return one_line(code, capsys.readouterr().err)

    assert "an ONNX model runs on onnxruntime's CPU provider" in run_demo(onnx_path, "--device", "cuda")
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(onnx_path.read_bytes())
    assert f"{lonely.with_suffix('.json')}: sidecar not found" in run_demo(lonely)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    broken.with_suffix(".json").write_text(onnx_path.with_suffix(".json").read_text())
    assert f"{broken}: onnxruntime cannot load this model" in run_demo(broken)
    bad_json = tmp_path / "badjson.onnx"
    bad_json.write_bytes(onnx_path.read_bytes())
    bad_json.with_suffix(".json").write_text("{not json")
    assert f"{bad_json.with_suffix('.json')}: malformed JSON" in run_demo(bad_json)

    # without the export extra: one line that says how to install it
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    assert "install the export extra: pip install 'spyolo[export]'" in run_demo(onnx_path)
    monkeypatch.setitem(sys.modules, "onnx", None)
    code, _out, err = _export_cli(["--weights", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "n.onnx")],
                                  capsys)
    assert "ONNX export needs the onnx package, which is not installed; install the export extra" in one_line(code, err)
    assert not (tmp_path / "n.onnx").exists()
