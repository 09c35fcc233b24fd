"""The energy report's last line, SPYv4's mAP and energy against its ANN twin's (``spyolo eval --spikes``,
``--twin``, ``train.distill_from``): the line, ``spike_stats.json``'s fields, the twin evaluated on the same
split with the same settings, and the errors of a twin that is not one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import save_tiny_checkpoint, tiny_config
from spyolo.config import Config, apply_overrides, config_to_dict
from spyolo.stats import TwinComparison

SYNTH_CLASSES = ["circle", "square", "triangle", "star", "hexagon", "cross", "ring", "arrow"]


def _checkpoint(path: Path, root: Path, over: dict | None = None, classes: list[str] | None = None) -> Path:
    return save_tiny_checkpoint(path, tiny_config(root, over), classes or SYNTH_CLASSES)


@pytest.fixture(scope="module")
def twin(tiny_voc_root: Path, tmp_path_factory) -> Path:
    """An ANN twin saved with other data and eval settings than the model's: another root, size, split and
    thresholds (its evaluation must use the model's)."""
    return _checkpoint(tmp_path_factory.mktemp("twin") / "ann.pt", tiny_voc_root, {
        "model.kind": "ann", "data.root": "/nonexistent", "data.img_size": 96, "data.test_sets": "[SYNTH:val]",
        "eval.conf_thresh": 0.3, "eval.max_images": 0})


def _main(argv: list[str]) -> int:
    from spyolo.cli import eval as tool

    return tool.main([*argv, "--no-progress", "--device", "cpu"])


# ------------------------------------------------------------------------------- the line


def test_the_line_with_and_without_a_twin() -> None:
    line = TwinComparison(0.30, 0.4567, 0.40, "runs/ann/last.pt", "--twin")
    assert line.map_ratio == pytest.approx(0.75)
    assert line.format_line() == ("SPYv4 75.0% of the twin's mAP at 0.457 x its energy (mAP 30.00% against 40.00%; "
                                  "twin runs/ann/last.pt, from --twin)")
    assert line.to_dict() == {
        "map_voc07": 0.30, "twin_map_voc07": 0.40, "map_ratio_to_twin": pytest.approx(0.75),
        "energy_ratio_to_twin": 0.4567, "twin_weights": "runs/ann/last.pt", "twin_source": "--twin",
        "twin_comparison": line.format_line()}
    alone = TwinComparison(0.30, 0.4567, note="train.distill_from x.pt: not found")
    assert alone.map_ratio is None
    assert alone.format_line().startswith("SPYv4 at 0.457 x the twin's energy; for its mAP against the twin's")
    assert "--twin PATH" in alone.format_line() and alone.format_line().endswith("(train.distill_from x.pt: not found)")
    assert {k: alone.to_dict()[k] for k in ("twin_map_voc07", "map_ratio_to_twin", "twin_weights")} == {
        "twin_map_voc07": None, "map_ratio_to_twin": None, "twin_weights": None}
    zero = TwinComparison(0.1, 0.5, 0.0, "t.pt", "--twin")
    assert zero.map_ratio is None and zero.format_line().startswith("SPYv4 n/a of the twin's mAP at 0.500 x")
    assert TwinComparison(0.1, float("nan")).to_dict()["energy_ratio_to_twin"] is None


def test_same_split_overrides_give_every_data_and_eval_key() -> None:
    from spyolo.eval.twin import same_split_overrides

    cfg = apply_overrides(Config(), ["data.test_sets=[VOC2007:test, VOC2012:val]", "data.img_size=320",
                                     "eval.conf_thresh=1e-5", "eval.max_images=7", "data.event_sensor=[640, 480]"])
    cfg.data.root = "/data/VOC devkit: 2 # not a comment"  # values that YAML would misread unquoted
    cfg.data.classes = "yes"
    other = apply_overrides(Config(), ["model.kind=ann", "data.img_size=96", "eval.nms_iou=0.3"])
    apply_overrides(other, same_split_overrides(cfg))
    mine, theirs = config_to_dict(cfg), config_to_dict(other)
    assert theirs["data"] == mine["data"] and theirs["eval"] == mine["eval"]
    assert theirs["model"]["kind"] == "ann"  # its own model


# ------------------------------------------------------------------------------ the command


def _fake_maps(monkeypatch, spyv4: float, twin: float) -> list:
    """Run both evaluations for real, but give them these mAPs (untrained tiny models score 0); return the
    twin's evaluations."""
    from spyolo.eval import evaluate
    from spyolo.eval import twin as twin_module

    real = evaluate.evaluate_checkpoint
    seen = []

    def with_map(value: float, record: bool):
        def run(*args, **kwargs):
            ev = real(*args, **kwargs)
            ev.result["map_voc07"] = value
            if record:
                seen.append(ev)
            return ev

        return run

    monkeypatch.setattr(evaluate, "evaluate_checkpoint", with_map(spyv4, False))
    monkeypatch.setattr(twin_module, "evaluate_checkpoint", with_map(twin, True))
    return seen


def test_twin_line_and_json_with_twin(twin: Path, tiny_voc_root: Path, tmp_path: Path, monkeypatch,
                                      capsys) -> None:
    ckpt = _checkpoint(tmp_path / "spyv4.pt", tiny_voc_root)
    seen = _fake_maps(monkeypatch, 0.30, 0.40)
    out = tmp_path / "out"
    assert _main(["--weights", str(ckpt), "--spikes", "--twin", str(twin), "--split", "val", "--max-images", "3",
                  "--out", str(out)]) == 0
    text = capsys.readouterr().out.splitlines()
    stats = json.loads((out / "spike_stats.json").read_text())
    energy = stats["energy_ratio_snn_over_ann"]
    line = (f"SPYv4 75.0% of the twin's mAP at {energy:.3f} x its energy (mAP 30.00% against 40.00%; twin {twin}, "
            f"from --twin)")
    at = text.index(line)
    assert text[at - 1].startswith("costs: ") and text[at + 1].startswith("wrote ")  # right after the table
    assert stats["twin_map_voc07"] == 0.40 and stats["map_voc07"] == 0.30
    assert stats["map_ratio_to_twin"] == pytest.approx(0.75) and stats["energy_ratio_to_twin"] == energy
    assert stats["twin_weights"] == str(twin) and stats["twin_source"] == "--twin"
    assert stats["twin_comparison"] == line
    # the twin ran on the model's split with the model's settings, not those it was saved with
    (twin_eval,) = seen
    assert twin_eval.config.model.kind == "ann" and twin_eval.timesteps == 1
    assert twin_eval.config.data.test_sets == ["SYNTH:val"] and twin_eval.config.data.img_size == 64
    assert twin_eval.config.data.root == str(tiny_voc_root) and twin_eval.config.eval.max_images == 3
    assert twin_eval.config.eval.conf_thresh == 0.001
    assert twin_eval.result["num_images"] == 3


def test_twin_from_train_distill_from_and_without_a_twin(twin: Path, tiny_voc_root: Path, tmp_path: Path,
                                                         monkeypatch, capsys) -> None:
    distilled = _checkpoint(tmp_path / "distilled.pt", tiny_voc_root, {"train.distill_from": str(twin)})
    _fake_maps(monkeypatch, 0.2, 0.5)
    out = tmp_path / "out"
    assert _main(["--weights", str(distilled), "--spikes", "--out", str(out)]) == 0
    assert "SPYv4 40.0% of the twin's mAP at " in capsys.readouterr().out
    stats = json.loads((out / "spike_stats.json").read_text())
    assert stats["twin_source"] == "train.distill_from" and stats["twin_weights"] == str(twin)
    assert stats["map_ratio_to_twin"] == pytest.approx(0.4)
    # a distill_from that is gone, or not a twin of the model: the energy ratio alone, and why
    for source, why in ((tmp_path / "gone.pt", "not found"), (distilled, "a spyv4 checkpoint")):
        gone = _checkpoint(tmp_path / "student.pt", tiny_voc_root, {"train.distill_from": str(source)})
        assert _main(["--weights", str(gone), "--spikes", "--out", str(out)]) == 0
        text = capsys.readouterr().out
        stats = json.loads((out / "spike_stats.json").read_text())
        energy = stats["energy_ratio_snn_over_ann"]
        assert f"SPYv4 at {energy:.3f} x the twin's energy; for its mAP against the twin's" in text
        assert "--twin PATH" in text and f"(train.distill_from {source}: {why}" in text
        assert stats["energy_ratio_to_twin"] == energy and stats["twin_map_voc07"] is None
        assert stats["map_ratio_to_twin"] is None and stats["twin_weights"] is None
    plain = _checkpoint(tmp_path / "plain.pt", tiny_voc_root)
    assert _main(["--weights", str(plain), "--spikes", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "the twin's energy; for its mAP against the twin's, give the twin's checkpoint" in text
    assert "train.distill_from" not in text


def test_a_twin_that_is_not_one_is_one_error_line(twin: Path, tiny_voc_root: Path, tmp_path: Path,
                                                  capsys) -> None:
    ckpt = _checkpoint(tmp_path / "spyv4.pt", tiny_voc_root)
    cases = [
        (["--twin", str(ckpt)], f"--twin {ckpt}: a spyv4 checkpoint (model.kind=spyv4); the twin is a trained ANN"),
        (["--twin", str(_checkpoint(tmp_path / "other.pt", tiny_voc_root, {"model.kind": "ann"}, ["a", "b"]))],
         "the twin was trained on other classes (a, b) than the model's (circle, square"),
        (["--twin", str(_checkpoint(tmp_path / "order.pt", tiny_voc_root, {"model.kind": "ann"},
                                    SYNTH_CLASSES[::-1]))], "the same classes in another order"),
        (["--twin", str(_checkpoint(tmp_path / "wide.pt", tiny_voc_root, {"model.kind": "ann", "model.width": 0.5}))],
         "the twin has model.width=0.5, the model 0.25"),
        (["--twin", str(tmp_path / "none.pt")], f"--twin {tmp_path / 'none.pt'}: checkpoint not found"),
    ]
    for extra, message in cases:
        assert _main(["--weights", str(ckpt), "--spikes", *extra]) == 2
        captured = capsys.readouterr()
        assert captured.err.startswith("error: ") and message in captured.err, captured.err
        assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err
        assert "Spike statistics" not in captured.out  # refused before the evaluation
    assert _main(["--weights", str(ckpt), "--twin", str(twin)]) == 2
    assert "error: --twin needs --spikes" in capsys.readouterr().err
    assert _main(["--gt-dir", str(tmp_path), "--det-dir", str(tmp_path), "--twin", str(twin)]) == 2
    assert "error: --twin needs --weights" in capsys.readouterr().err
