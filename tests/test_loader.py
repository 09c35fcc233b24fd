"""Collation, seeded data loaders, mosaic through the dataset, and build_dataset."""

from __future__ import annotations

import dataclasses
import logging
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from spyolo.config import Config, DataConfig
from spyolo.data.dataset import DetectionDataset
from spyolo.data.loader import build_dataloader, collate_detection
from spyolo.data.transforms import build_train_transform
from spyolo.data.voc import VOC_CLASSES
from spyolo.datasets import build_dataset as build_full
from spyolo.datasets import ensure_synthetic


def make_voc(year: Path, n: int, split: str = "train", seed: int = 0) -> None:
    """n random 48x64 images, each with two objects, listed in `split`."""
    rng = np.random.default_rng(seed)
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (year / sub).mkdir(parents=True, exist_ok=True)
    ids = [f"{i:06d}" for i in range(n)]
    for image_id in ids:
        cv2.imwrite(str(year / "JPEGImages" / f"{image_id}.jpg"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
        (year / "Annotations" / f"{image_id}.xml").write_text(
            "<annotation><size><width>64</width><height>48</height><depth>3</depth></size>"
            "<object><name>dog</name><difficult>0</difficult><bndbox><xmin>5</xmin><ymin>6</ymin>"
            "<xmax>40</xmax><ymax>30</ymax></bndbox></object>"
            "<object><name>car</name><difficult>0</difficult><bndbox><xmin>30</xmin><ymin>20</ymin>"
            "<xmax>64</xmax><ymax>48</ymax></bndbox></object></annotation>"
        )
    (year / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")


def test_collate_shapes_and_batch_index() -> None:
    batch = [
        (torch.zeros(3, 8, 8), torch.tensor([[1, 0.5, 0.5, 0.2, 0.2], [2, 0.1, 0.2, 0.3, 0.4]]), {"index": 0}),
        (torch.ones(3, 8, 8), torch.zeros(0, 5), {"index": 1}),
        (torch.full((3, 8, 8), 0.5), torch.tensor([[7, 0.9, 0.8, 0.1, 0.1]]), {"index": 2}),
    ]
    images, targets, metas = collate_detection(batch)
    assert images.shape == (3, 3, 8, 8) and images.dtype == torch.float32
    assert images[1].max() == 1 and images[2, 0, 0, 0] == 0.5
    torch.testing.assert_close(
        targets,
        torch.tensor([[0, 1, 0.5, 0.5, 0.2, 0.2], [0, 2, 0.1, 0.2, 0.3, 0.4], [2, 7, 0.9, 0.8, 0.1, 0.1]]),
    )
    assert [m["index"] for m in metas] == [0, 1, 2]
    empty_images, empty_targets, _ = collate_detection([batch[1]])
    assert empty_images.shape == (1, 3, 8, 8) and empty_targets.shape == (0, 6)
    with pytest.raises(ValueError, match="images of one size"):
        collate_detection([batch[0], (torch.zeros(3, 4, 8), torch.zeros(0, 5), {})])


def _epochs(loader, n_epochs: int = 2) -> list[tuple[torch.Tensor, torch.Tensor, list[int]]]:
    out = []
    for _ in range(n_epochs):
        for images, targets, metas in loader:
            out.append((images, targets, [m["index"] for m in metas]))
    return out


def _same(a, b) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) and x[2] == y[2] for x, y in zip(a, b)
    )


def _train_dataset(year: Path, mosaic: float = 0.0) -> DetectionDataset:
    return DetectionDataset([(year, "train")], VOC_CLASSES, transform=build_train_transform(64), mosaic_prob=mosaic)


def test_loader_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    make_voc(tmp_path / "V", 6)
    runs = []
    for seed in (0, 0, 1):
        loader = build_dataloader(_train_dataset(tmp_path / "V"), batch_size=4, shuffle=True, workers=0, seed=seed)
        assert loader.pin_memory == torch.cuda.is_available()
        runs.append(_epochs(loader))
    assert _same(runs[0], runs[1])
    assert not _same(runs[0], runs[2])
    images, targets, indices = runs[0][0]
    assert images.shape == (4, 3, 64, 64) and targets.shape[1] == 6
    assert sorted(runs[0][0][2] + runs[0][1][2]) == list(range(6))  # one epoch covers every sample once
    assert runs[0][0][2] != runs[0][2][2] or not torch.equal(runs[0][0][0], runs[0][2][0])  # epochs differ


def test_loader_with_a_worker_is_deterministic(tmp_path: Path) -> None:
    make_voc(tmp_path / "V", 4)
    runs = []
    for _ in range(2):
        loader = build_dataloader(_train_dataset(tmp_path / "V"), batch_size=2, shuffle=True, workers=1, seed=3)
        assert loader.persistent_workers and loader.prefetch_factor == 4
        runs.append(_epochs(loader))
        del loader
    assert _same(runs[0], runs[1])


def test_mosaic_through_the_dataset(tmp_path: Path) -> None:
    make_voc(tmp_path / "V", 4)
    ds = _train_dataset(tmp_path / "V", mosaic=1.0)
    ds.set_seed(0)
    for i in range(len(ds)):
        image, target, meta = ds[i]
        assert image.shape == (3, 64, 64) and meta["image_id"] == f"{i:06d}" and meta["letterbox"] is None
        assert target.shape[1] == 5 and len(target) > 0
        assert set(target[:, 0].tolist()) <= {VOC_CLASSES.index("dog"), VOC_CLASSES.index("car")}
        assert target[:, 1:].min() >= 0 and target[:, 1:].max() <= 1


def _fake_generator(calls: list):
    """A stand-in for generate_synthetic_voc: a tiny VOC set plus the real provenance record."""
    import json

    from spyolo.data.synthetic import provenance_for

    def fake_generate(out_dir, n_train, n_test, seed, *, classes=None, min_side=300, max_side=500, spec=None,
                      overwrite=False):
        calls.append((Path(out_dir), n_train, n_test, seed))
        make_voc(Path(out_dir), n_train, split="trainval", seed=seed)
        names = [f"{i:06d}" for i in range(n_test)]
        (Path(out_dir) / "ImageSets" / "Main" / "test.txt").write_text("\n".join(names) + "\n")
        (Path(out_dir) / "classes.txt").write_text("\n".join(VOC_CLASSES) + "\n")
        record = provenance_for(n_train, n_test, seed, classes=classes, min_side=min_side, max_side=max_side,
                                spec=spec)
        (Path(out_dir) / "synthetic_spec.json").write_text(json.dumps(record))
        (Path(out_dir) / ".synthetic_complete").write_text("")
        return Path(out_dir)

    return fake_generate


def build_dataset(data: DataConfig, train: bool):
    """The dataset of a config with this data section."""
    return build_full(Config(data=data), train)


def test_ensure_synthetic_and_build_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    import spyolo.data.synthetic as synthetic

    calls: list = []
    monkeypatch.setattr(synthetic, "generate_synthetic_voc", _fake_generator(calls))
    cfg = dataclasses.replace(
        DataConfig(),
        root=str(tmp_path),
        train_sets=["SYN:trainval"],
        test_sets=["SYN:test"],
        img_size=64,
        synthetic_train=3,
        synthetic_test=2,
        synthetic_seed=7,
    )
    with caplog.at_level(logging.INFO, logger="spyolo"):
        ensure_synthetic(cfg)
    assert calls == [(tmp_path / "SYN", 3, 2, 7)]
    assert "generated a synthetic VOC-style dataset for SYN:trainval (3 train, 2 test, seed 7)" in caplog.text
    ensure_synthetic(cfg)  # already there with the same settings: not regenerated
    assert len(calls) == 1

    train = build_dataset(cfg, train=True)
    test = build_dataset(cfg, train=False)
    assert len(calls) == 1
    assert (len(train), len(test)) == (3, 2)
    assert train.transform.is_train and test.transform.mode == "stretch"
    assert train.class_names == list(VOC_CLASSES)
    image, target, meta = test[0]
    assert image.shape == (3, 64, 64) and meta["letterbox"] is None
    # dog VOC (5, 6, 40, 30) -> continuous (4, 5, 40, 30) in 64x48, stretched: normalised the same.
    torch.testing.assert_close(target[0], torch.tensor([11, 22 / 64, 17.5 / 48, 36 / 64, 25 / 48]))

    letterbox = build_dataset(dataclasses.replace(cfg, eval_resize="letterbox"), train=False)
    assert letterbox[0][2]["letterbox"] == (1.0, 0, 8)


def test_ensure_synthetic_regenerates_when_settings_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           caplog) -> None:
    import spyolo.data.synthetic as synthetic

    calls: list = []
    monkeypatch.setattr(synthetic, "generate_synthetic_voc", _fake_generator(calls))
    cfg = dataclasses.replace(DataConfig(), root=str(tmp_path), train_sets=["SYN:trainval"], test_sets=["SYN:test"],
                              synthetic_train=3, synthetic_test=2, synthetic_seed=7)
    ensure_synthetic(cfg)
    for changed in (dict(synthetic_train=4), dict(synthetic_seed=8), dict(synthetic_spec={"distractors": [0, 1]}),
                    dict(synthetic_classes=["circle", "ring"]), dict(synthetic_max_side=400)):
        cfg = dataclasses.replace(cfg, **changed)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="spyolo"):
            ensure_synthetic(cfg)
        out = caplog.text
        assert "generated with other settings" in out and "regenerating" in out, changed
    assert len(calls) == 6
    ensure_synthetic(cfg)
    assert len(calls) == 6


def test_ensure_synthetic_concurrent_first_runs_take_turns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two trainings started together on a fresh clone: one generates, the other waits and reuses it."""
    import threading
    import time

    import spyolo.data.synthetic as synthetic

    calls: list = []
    inside: list[int] = []
    overlaps: list[int] = []
    fake = _fake_generator(calls)

    def slow_generate(*args, **kwargs):
        inside.append(1)
        overlaps.append(len(inside))
        time.sleep(0.5)  # long enough that the second caller arrives while the first writes
        out = fake(*args, **kwargs)
        inside.pop()
        return out

    monkeypatch.setattr(synthetic, "generate_synthetic_voc", slow_generate)
    cfg = dataclasses.replace(DataConfig(), root=str(tmp_path), train_sets=["SYN:trainval"], test_sets=["SYN:test"],
                              synthetic_train=3, synthetic_test=2, synthetic_seed=7)
    errors: list[BaseException] = []

    def first_run() -> None:
        try:
            ensure_synthetic(cfg)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=first_run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert len(calls) == 1 and overlaps == [1]
    assert synthetic.is_complete(tmp_path / "SYN")
    assert (tmp_path / ".SYN.lock").is_file() and not (tmp_path / "SYN" / ".SYN.lock").exists()


def test_ensure_synthetic_refuses_foreign_data(tmp_path: Path) -> None:
    make_voc(tmp_path / "VOC2007", 2, split="trainval")
    cfg = dataclasses.replace(DataConfig(), root=str(tmp_path), train_sets=["VOC2007:trainval"],
                              test_sets=["VOC2007:trainval"], synthetic_train=5, synthetic_test=1)
    with pytest.raises(FileExistsError, match=r"VOC2007.*holds other data"):
        ensure_synthetic(cfg)


def test_synthetic_settings_from_config() -> None:
    from spyolo.config import ConfigError, config_from_dict
    from spyolo.data.synthetic import SyntheticSpec, synthetic_settings

    cfg = config_from_dict({"data": {"synthetic_train": 2, "synthetic_spec": {"distractors": [0, 2],
                                                                             "truncation_prob": 0.0},
                                     "synthetic_classes": ["circle", "square"], "synthetic_min_side": 160,
                                     "synthetic_max_side": 200}})
    settings = synthetic_settings(cfg.data)
    assert settings["spec"] == SyntheticSpec(distractors=(0, 2), truncation_prob=0.0)
    assert settings["classes"] == ["circle", "square"] and (settings["min_side"], settings["max_side"]) == (160, 200)
    with pytest.raises(ConfigError, match=r"unknown knob\(s\) \['distracters'\]; valid knobs: objects_per_image"):
        config_from_dict({"data": {"synthetic_train": 2, "synthetic_spec": {"distracters": [0, 2]}}}, "x.yaml")
    with pytest.raises(ConfigError, match=r"x.yaml: data.synthetic_spec: SyntheticSpec.truncation_prob must be in"):
        config_from_dict({"data": {"synthetic_train": 2, "synthetic_spec": {"truncation_prob": 2.0}}}, "x.yaml")
    with pytest.raises(ConfigError, match=r"data.synthetic_classes: unknown synthetic classes \['dragon'\]"):
        config_from_dict({"data": {"synthetic_train": 2, "synthetic_classes": ["dragon"]}}, "x.yaml")
    with pytest.raises(ConfigError, match=r"expected a mapping"):
        config_from_dict({"data": {"synthetic_spec": [1, 2]}}, "x.yaml")


def test_no_synthetic_when_not_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args):
        raise AssertionError("generator must not be called")

    monkeypatch.setitem(sys.modules, "spyolo.data.synthetic", types.SimpleNamespace(generate_synthetic_voc=fail))
    make_voc(tmp_path / "VOC2007", 2, split="trainval")
    cfg = dataclasses.replace(
        DataConfig(), root=str(tmp_path), train_sets=["VOC2007:trainval"], test_sets=["VOC2007:trainval"]
    )
    ensure_synthetic(cfg)
    assert len(build_dataset(cfg, train=True)) == 2
