"""Classes matched by name: a model scored on a dataset of other classes (``spyolo eval``), the class-map
file (``eval.class_map``), and the real case: Darknet's COCO YOLOv4-tiny on real VOC photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import save_tiny_checkpoint
from spyolo.checkpoint import load_checkpoint, save_checkpoint
from spyolo.cli import eval as eval_cli
from spyolo.config import Config, config_from_dict, config_to_dict
from spyolo.data.voc import VOC_CLASSES
from spyolo.errors import ConfigError
from spyolo.eval.classes import class_matching, read_class_map
from spyolo.eval.evaluate import evaluate_checkpoint
from spyolo.models import build_model, transfer_weights
from spyolo.utils.classnames import class_key, match_classes

SYNTH = ["circle", "square", "triangle", "star", "hexagon", "cross", "ring", "arrow"]
REAL = Path(__file__).resolve().parents[2] / "shared" / "realdata"
needs_real = pytest.mark.skipif(not (REAL / "VOC_SAMPLE").is_dir() or not (REAL / "yolov4-tiny").is_dir(),
                                reason="../shared/realdata (VOC_SAMPLE, yolov4-tiny) is not present")


def test_class_keys_and_matching() -> None:
    assert class_key("Dining Table") == class_key("dining_table") == class_key("diningtable") == "diningtable"
    for coco, voc in [("airplane", "aeroplane"), ("motorcycle", "motorbike"), ("couch", "sofa"), ("tv", "tvmonitor"),
                      ("dining table", "diningtable"), ("potted plant", "pottedplant"), ("TV Monitor", "tvmonitor")]:
        assert class_key(coco) == class_key(voc), (coco, voc)
    assert class_key("car") != class_key("truck")
    coco = ["person", "bicycle", "car", "motorcycle", "airplane", "truck", "couch", "tv", "dining table"]
    m = match_classes(coco, list(VOC_CLASSES))
    assert len(m.pairs) == 8 and "truck" in m.unmatched_source
    assert m.source_of_target()[VOC_CLASSES.index("sofa")] == coco.index("couch")
    assert m.target_of_source()[coco.index("truck")] == -1
    assert "bird" in m.unmatched_target and "aeroplane <- airplane" in m.describe_pairs()
    assert match_classes(VOC_CLASSES, VOC_CLASSES).identical
    assert not match_classes(["b", "a"], ["a", "b"]).identical


def _reheaded(ckpt: dict, names: list[str], extra_bias: float = 8.0) -> dict:
    """``ckpt`` with heads for ``names``: a name of the checkpoint's classes (any case) takes that class's
    channels; any other name a copy of the first class's channels with a large bias, so that it would win
    every box if it were scored."""
    old = [n.lower() for n in ckpt["class_names"]]
    state = dict(ckpt["model"])
    for head in ("head1", "head2"):
        weight, bias = state[f"{head}.weight"], state[f"{head}.bias"]
        per_old = 5 + len(old)
        rows, extra = [], []
        for slot in range(weight.shape[0] // per_old):
            base = slot * per_old
            rows += list(range(base, base + 5))
            for name in names:
                known = name.lower() in old
                rows.append(base + 5 + (old.index(name.lower()) if known else 0))
                extra.append(not known)
        index = torch.tensor(rows)
        state[f"{head}.weight"] = weight.index_select(0, index).clone()
        new_bias = bias.index_select(0, index).clone()
        flags = torch.tensor([False] * 5 + extra[: len(names)])
        new_bias[flags.repeat(weight.shape[0] // per_old)] += extra_bias
        state[f"{head}.bias"] = new_bias
    return {**ckpt, "model": state, "class_names": names}


def _eval(capsys, weights: Path, *extra: str) -> tuple[int, str]:
    code = eval_cli.main(["--weights", str(weights), "--no-progress", *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _detections(weights: Path, *overrides: str) -> tuple[dict, dict]:
    """The detections (image, box, score, dataset label; sorted) and the result of an evaluation."""
    res = evaluate_checkpoint(weights, ["eval.conf_thresh=0.05", *overrides], progress=False, records=True).result
    records = res.pop("records")
    order = np.lexsort((-records["det_scores"], records["det_image"]))
    return {k: records[f"det_{k}"][order] for k in ("image", "boxes", "scores", "labels")}, res


def test_eval_scores_a_model_of_other_classes_by_name(tiny_voc_root: Path, tmp_path: Path, capsys) -> None:
    cfg = Config()
    for key, value in {"root": str(tiny_voc_root), "img_size": 64, "workers": 0}.items():
        setattr(cfg.data, key, value)
    cfg.model.width, cfg.model.timesteps, cfg.eval.batch_size = 0.25, 2, 4
    base = save_tiny_checkpoint(tmp_path / "base.pt", cfg, SYNTH)
    ckpt = load_checkpoint(base)
    gen = torch.Generator().manual_seed(0)
    for head in ("head1", "head2"):  # class scores that differ between classes, slots and positions
        ckpt["model"][f"{head}.bias"] = torch.randn(ckpt["model"][f"{head}.bias"].shape, generator=gen)
        ckpt["model"][f"{head}.weight"] = 0.5 * torch.randn(ckpt["model"][f"{head}.weight"].shape, generator=gen)
    save_checkpoint(ckpt, base)
    want, _ = _detections(base)
    assert len(want["labels"]) > 20 and len(set(want["labels"].tolist())) > 4  # many boxes of several classes
    assert len(set(want["scores"].tolist())) > 20
    code, text = _eval(capsys, base)
    assert code == 0 and "classes matched" not in text
    # the dataset's classes in other spellings and order, and two it lacks, whose channels would win every box
    names = ["Arrow", "Ring", "wheel", "CROSS", "hexagon", "Star", "triangle", "square", "spiral", "Circle"]
    other = tmp_path / "other.pt"
    save_checkpoint(_reheaded(load_checkpoint(base), names), other)
    got, _ = _detections(other)
    assert all(np.array_equal(got[k], want[k]) for k in want)  # the same detections, labelled as the dataset's
    code, text = _eval(capsys, other)
    assert code == 0, text
    assert "classes matched by name: 8 pairs" in text and "arrow <- Arrow" in text and "circle <- Circle" in text
    assert "left out (no detections): 2 model classes without a dataset class: wheel, spiral" in text
    # a dataset class that no model class stands for: AP 0, listed
    fewer = tmp_path / "fewer.pt"
    save_checkpoint(_reheaded(load_checkpoint(base), names[:-1]), fewer)
    got, res = _detections(fewer)
    assert SYNTH.index("circle") not in got["labels"].tolist() and res["ap_voc07"]["circle"] == 0.0
    assert res["npos"]["circle"] > 0
    code, text = _eval(capsys, fewer)
    assert "dataset classes without a model class (AP 0 where they have ground truth): circle" in text
    # a class map pairs explicitly and replaces the matching by name
    mapping = tmp_path / "map.yaml"
    mapping.write_text("Arrow: arrow\nRing: ring\nwheel: circle\nspiral: null\n")
    got, _ = _detections(other, f"eval.class_map={mapping}")
    assert set(got["labels"].tolist()) <= {SYNTH.index(n) for n in ("arrow", "ring", "circle")}
    assert SYNTH.index("circle") in got["labels"].tolist()  # wheel's boxes, which win wherever it is scored
    code, text = _eval(capsys, other, f"eval.class_map={mapping}")
    assert code == 0, text
    assert f"classes matched by the class map {mapping}: 3 pairs" in text and "circle <- wheel" in text
    assert "left out (no detections): 7 model classes" in text
    # a model sharing no class
    none = tmp_path / "none.pt"
    save_checkpoint(_reheaded(load_checkpoint(base), ["bolt", "nut"]), none)
    code, text = _eval(capsys, none)
    assert code == 2 and "share no class by name (eval.class_map=FILE pairs them explicitly)" in text


@pytest.mark.parametrize(("content", "needle"), [
    ("Arow: arrow\n", "'Arow' is not one of the model's classes (Arrow, Ring"),
    ("Arrow: arow\n", "'Arrow' maps to 'arow', which is not one of the dataset's classes"),
    ("- Arrow\n- Ring\n", "expected a YAML mapping of 'model class: dataset class' lines, got a list"),
    ("", "got an empty file"),
    ("Arrow: [arrow\n", "invalid YAML"),
    (b"\xff\xfeArrow", "not a YAML text file (not UTF-8"),
])  # fmt: skip
def test_class_map_errors(tmp_path: Path, content, needle: str) -> None:
    path = tmp_path / "map.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ConfigError) as info:
        read_class_map(path, ["Arrow", "Ring"], ["arrow", "ring"])
    assert needle in str(info.value) and str(info.value).startswith(f"eval.class_map={path}: ")
    with pytest.raises(ConfigError, match="class map not found"):
        class_matching(["a"], ["a"], tmp_path / "missing.yaml")


@needs_real
def test_coco_detector_on_real_voc_photos_by_name(tmp_path: Path, capsys, monkeypatch) -> None:
    """Darknet's COCO YOLOv4-tiny as the named weights (its three files put in the cache by hand: the
    registry's checksums verify them) scores VOC_SAMPLE with its classes matched to VOC's (84.72% VOC2007
    mAP by an independent script); a 20-class VOC model started from it by name scores the same."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("SPYOLO_CACHE", str(cache))
    folder = cache / "downloads" / "yolov4-tiny-coco"
    folder.mkdir(parents=True)
    darknet = REAL / "yolov4-tiny"
    for source, name in (("yolov4-tiny.weights", "yolov4-tiny.weights"), ("yolov4-tiny.cfg", "yolov4-tiny.cfg"),
                         ("coco.names", "yolov4-tiny.names")):
        shutil.copyfile(darknet / source, folder / name)
    data = [f"data.root={REAL / 'VOC_SAMPLE'}", "data.test_sets=[VOC2007:test]", "--no-progress"]
    assert eval_cli.main(["--weights", "yolov4-tiny-coco", *data, "--json", str(tmp_path / "coco.json")]) == 0
    text = capsys.readouterr().out
    assert "classes matched by name: 20 pairs" in text and "60 model classes without a dataset class" in text
    coco_map = json.loads((tmp_path / "coco.json").read_text())["map_voc07"]
    assert abs(100 * coco_map - 84.72) <= 1.0, coco_map

    coco = cache / "checkpoints" / "yolov4-tiny-coco.pt"
    ckpt = load_checkpoint(coco)
    cfg = config_from_dict(ckpt["config"], "coco")  # its decoding and resize, 20 classes
    results = {}
    for heads in ("auto", "boxes"):
        model = build_model(cfg.model, num_classes=20)
        report = transfer_weights(model, coco, class_names=list(VOC_CLASSES), heads=heads)
        path = save_checkpoint({"model": model.state_dict(), "config": config_to_dict(cfg),
                                "class_names": list(VOC_CLASSES)}, tmp_path / f"voc_{heads}.pt")
        assert eval_cli.main(["--weights", str(path), *data, "--json", str(tmp_path / f"{heads}.json")]) == 0
        results[heads] = json.loads((tmp_path / f"{heads}.json").read_text())["map_voc07"]
        if heads == "auto":
            assert "matched by name (model.init_heads=names)" in report.summary()
    capsys.readouterr()
    assert results["auto"] == pytest.approx(coco_map, abs=1e-9)
    assert results["boxes"] < 0.5 * coco_map  # class channels at init: the competence is not carried over
