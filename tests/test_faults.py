"""Fault injection: what a careless or hostile user does, and what spyolo must do about it.

Each test builds a fault, runs the real command (``spyolo.cli.<cmd>.main``, in this process for
speed; the scripts in ``tools/`` run the same functions) and checks: the exit status, one line
``error: ...`` naming the file and the problem, no traceback, and that every input file is
byte-identical afterwards. Sizes: 64 px, width 0.25, T = 2, a few iterations per epoch.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from conftest import save_tiny_checkpoint, tiny_config
from spyolo.checkpoint import load_checkpoint
from spyolo.cli import demo as demo_cli
from spyolo.cli import eval as eval_cli
from spyolo.cli import synth as synth_cli
from spyolo.cli import train as train_cli
from spyolo.config import Config, save_config
from spyolo.data.synthetic import is_complete

SYNTH = ["circle", "square", "triangle", "star", "hexagon", "cross", "ring", "arrow"]


# ------------------------------------------------------------------------------ helpers


def snapshot(*roots: Path) -> dict[str, str]:
    """sha256 of every file below ``roots`` (the inputs that must stay byte-identical)."""
    out = {}
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def run(cli, argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def expect_error(result: tuple[int, str, str], *needles: str) -> str:
    """Exit status 2, exactly one ``error:`` line holding every needle, no traceback; returns the line."""
    code, _out, err = result
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def data_root(tiny_voc_root: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny synthetic VOC set (tests damage it)."""
    root = tmp_path / "data"
    shutil.copytree(tiny_voc_root, root)
    return root


def write_config(tmp_path: Path, root: Path, **over) -> Path:
    cfg = tiny_config(root, {"train.epochs": 2, "train.max_iters_per_epoch": 2, "eval.max_images": 4, **over})
    path = tmp_path / "tiny.yaml"
    save_config(cfg, path)
    return path


def train(capsys, *argv: str) -> tuple[int, str, str]:
    return run(train_cli, [*argv, "--no-progress"], capsys)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    cfg = Config()
    cfg.data.img_size = 64
    cfg.model.width = 0.25
    cfg.model.timesteps = 2
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt", cfg, ["cat", "dog", "bird"])


def _photo(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    return path


def _video(path: Path, frames: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 20 * i % 255, np.uint8))
    writer.release()
    return path


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# ------------------------------------------------------------------------------ data loss


def test_demo_never_replaces_an_input(ckpt: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    _photo(folder / "photo.jpg")
    _video(folder / "clip.mp4", 3)
    before = snapshot(folder)
    for source in ("photo.jpg", "clip.mp4"):
        result = run(demo_cli, ["--weights", str(ckpt), "--source", str(folder / source), "--out", str(folder),
                                "--device", "cpu", "--no-progress"], capsys)
        expect_error(result, source, "would replace this input file")
    assert snapshot(folder) == before

    out = tmp_path / "out"
    args = ["--weights", str(ckpt), "--source", str(folder / "photo.jpg"), "--out", str(out), "--device", "cpu",
            "--no-progress"]
    assert run(demo_cli, args, capsys)[0] == 0
    earlier = snapshot(out)
    expect_error(run(demo_cli, args, capsys), "photo.jpg", "already exist", "--exist-ok")
    assert snapshot(out) == earlier
    assert run(demo_cli, [*args, "--exist-ok"], capsys)[0] == 0


def test_synth_overwrite_never_deletes_other_data(data_root: Path, capsys) -> None:
    foreign = data_root / "SYNTH"
    (foreign / "synthetic_spec.json").unlink()  # now it is just some VOC data
    before = snapshot(foreign)
    for extra in ([], ["--overwrite"]):
        line = expect_error(run(synth_cli, ["--out", str(foreign), "--train", "2", "--test", "1", "--no-progress",
                                            *extra], capsys), str(foreign), "did not generate")
        assert "--overwrite" not in line  # never suggested for someone else's data
    assert snapshot(foreign) == before


def test_a_fresh_run_never_reuses_an_earlier_runs_folder(data_root: Path, tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "runs" / "old"
    (run_dir / "weights").mkdir(parents=True)
    (run_dir / "args.yaml").write_text("data: {}\n")
    (run_dir / "results.csv").write_text("epoch,loss\n1,5.0\n")
    (run_dir / "weights" / "last.pt").write_bytes(b"earlier weights")
    before = snapshot(run_dir)
    config = write_config(tmp_path, data_root)
    expect_error(train(capsys, "--config", str(config), "--run-dir", str(run_dir), "--exist-ok"),
                 str(run_dir), "holds an earlier run", "--resume")
    assert snapshot(run_dir) == before


# ------------------------------------------------------------------------ silently wrong


def test_truncated_image_is_an_error_or_a_listed_skip(data_root: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """A truncated photo (no end-of-image marker): with and without loader workers the start-up check stops
    the run before its first batch with one line naming it; data.skip_bad=true trains without it."""
    from spyolo.train.trainer import Trainer

    bad = data_root / "SYNTH" / "JPEGImages" / "000002.jpg"
    _truncate(bad)
    before = snapshot(data_root)
    config = write_config(tmp_path, data_root)
    fit = Trainer.fit
    monkeypatch.setattr(Trainer, "fit", lambda self: pytest.fail("training started"))
    for workers in (0, 2):
        run_dir = tmp_path / f"a{workers}"
        result = train(capsys, "--config", str(config), "--run-dir", str(run_dir), f"data.workers={workers}")
        line = expect_error(result, f"{bad}: truncated JPEG (the end-of-image marker is missing)", "data.skip_bad=true")
        assert "Caught" not in line and "worker" not in line and not run_dir.exists()
    monkeypatch.setattr(Trainer, "fit", fit)
    code, out, err = train(capsys, "--config", str(config), "--run-dir", str(tmp_path / "b"), "data.skip_bad=true",
                           "train.epochs=1")
    assert code == 0, err
    assert f"{bad}: truncated JPEG" in err and "skipped 1 of" in err  # listed at start-up
    assert snapshot(data_root) == before


def test_resume_refuses_other_settings_and_recovers_from_a_kill(data_root: Path, tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path, data_root, **{"train.epochs": 3})
    straight = tmp_path / "straight"
    assert train(capsys, "--config", str(config), "--run-dir", str(straight))[0] == 0
    run_dir = tmp_path / "run"
    assert train(capsys, "--config", str(config), "--run-dir", str(run_dir), "train.epochs=3")[0] == 0
    # Turn it into a run killed with -9 during epoch 3's save: last.pt holds epoch 2, a temp file was
    # left behind, and results.csv already has epoch 3's row.
    shutil.copy(straight / "weights" / "last.pt", run_dir / "weights" / "last.pt")
    shutil.copy(straight / "results.csv", run_dir / "results.csv")
    ckpt = load_checkpoint(run_dir / "weights" / "last.pt")
    ckpt["epoch"] = 1
    ckpt["history"] = ckpt["history"][:2]
    torch.save(ckpt, run_dir / "weights" / "last.pt")
    (run_dir / "weights" / ".last.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")

    args_before = (run_dir / "args.yaml").read_bytes()
    expect_error(train(capsys, "--resume", str(run_dir), "train.lr=0.1", "train.epochs=5"),
                 "train.epochs, train.lr", "cannot change on resume", "model.init_from=")
    assert (run_dir / "args.yaml").read_bytes() == args_before  # args.yaml never says what did not happen

    code, _out, err = train(capsys, "--resume", str(run_dir), "train.device=cpu")
    assert code == 0, err
    assert not list((run_dir / "weights").glob(".last.pt.*.tmp"))
    rows = (run_dir / "results.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3"]  # epoch 3 once, from the resumed run
    starts = yaml.safe_load((run_dir / "run.yaml").read_text())["starts"]
    assert [s["resumed_at_epoch"] for s in starts] == [None, 2]
    assert starts[-1]["command"] and starts[-1]["torch"] == str(torch.__version__)


def test_non_finite_weights_are_never_saved(make_tiny_config, tmp_path: Path) -> None:
    from spyolo.errors import TrainingDiverged
    from spyolo.train.trainer import Trainer

    # BPTT: no end-of-epoch copy of FPTT's running average (which would hide the injected blow-up)
    cfg = make_tiny_config({"train.epochs": 2, "train.max_iters_per_epoch": 1, "train.method": "bptt"})
    tr = Trainer(cfg, tmp_path / "run", progress=False)
    real_step = tr.parts.step

    def exploding_step(images, targets):
        out = real_step(images, targets)  # a finite loss ...
        with torch.no_grad():
            tr.core.conv1.conv.weight.fill_(float("inf"))  # ... and an update that blew up the weights
        return out

    tr.parts.step = exploding_step
    with pytest.raises(TrainingDiverged, match=r"weights became non-finite during epoch 1 \(conv1.conv.weight\); "
                                               r"they were not saved; no checkpoint was saved"):
        tr.fit()
    tr.close()
    assert not (tmp_path / "run" / "weights" / "last.pt").exists()


def test_thin_boxes_stay_valid_voc_boxes() -> None:
    from spyolo.inference.postprocess import to_original_voc

    boxes = np.array([[159.9, 10.0, 170.0, 20.0], [0.0, 0.0, 0.2, 5.0], [10.0, 10.0, 10.3, 10.6]], np.float32)
    voc = to_original_voc(boxes, (100, 160), 160, None)
    assert (voc[:, 0] <= voc[:, 2]).all() and (voc[:, 1] <= voc[:, 3]).all()
    assert voc.min() >= 1.0 and voc[:, [0, 2]].max() <= 160 and voc[:, [1, 3]].max() <= 100


def test_text_files_bom_latin1_and_binary_config(data_root: Path, tmp_path: Path, capsys) -> None:
    split = data_root / "SYNTH" / "ImageSets" / "Main" / "trainval.txt"
    ids = split.read_text().split()
    split.write_bytes(b"\xef\xbb\xbf" + "\n".join(ids).encode() + b"\n")  # a UTF-8 BOM, as some editors write
    config = write_config(tmp_path, data_root, **{"train.epochs": 1})
    code, _out, err = train(capsys, "--config", str(config), "--run-dir", str(tmp_path / "bom"))
    assert code == 0, err

    split.write_bytes(b"000001\ncaf\xe9\n")  # a Latin-1 byte
    expect_error(train(capsys, "--config", str(config), "--run-dir", str(tmp_path / "latin")),
                 str(split), "not UTF-8 text")
    binary = tmp_path / "model.yaml"
    binary.write_bytes(bytes(range(256)))
    expect_error(train(capsys, "--config", str(binary)), str(binary), "not a YAML text file")


# --------------------------------------------------------------- one line instead of a traceback


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_cuda_asked_for_on_a_machine_without_it(data_root: Path, tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path, data_root)
    expect_error(train(capsys, "--config", str(config), "train.device=cuda"), "'cuda'", "CUDA is not available")
    expect_error(train(capsys, "--config", str(config), "train.device=gpu"), "unknown device 'gpu'")


def test_unwritable_run_folder_fails_before_training(data_root: Path, tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path, data_root)
    blocker = tmp_path / "runfile"
    blocker.write_text("a user's file")
    expect_error(train(capsys, "--config", str(config), "--run-dir", str(blocker), "--exist-ok"),
                 str(blocker), "a file stands where the run folder should be")
    assert blocker.read_text() == "a user's file"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "weights").write_text("not a folder")
    code, out, err = train(capsys, "--config", str(config), "--run-dir", str(run_dir), "--exist-ok")
    expect_error((code, out, err), str(run_dir / "weights"), "a file stands where the run folder should be")
    assert "epoch 1" not in err  # nothing was trained before the error


def full_disk(monkeypatch, fills: callable, room: int = 1000) -> None:
    """Simulate a nearly full disk: a temporary file of spyolo.utils.io whose destination
    ``fills(path)`` selects takes ``room`` bytes, then every write fails with ENOSPC, as the
    operating system does (a short write, then the error), under Python's usual buffered file."""
    import io
    import tempfile

    import spyolo.utils.io as io_module

    real_mkstemp, real_fdopen = tempfile.mkstemp, os.fdopen
    destinations: dict[int, Path] = {}

    class NearlyFull(io.RawIOBase):
        def __init__(self, fd: int):
            self.fd, self.room = fd, room

        def writable(self) -> bool:
            return True

        def fileno(self) -> int:
            return self.fd

        def write(self, data) -> int:
            if self.room <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written = os.write(self.fd, bytes(data[: self.room]))
            self.room -= written
            return written

        def close(self) -> None:
            if not self.closed:
                os.close(self.fd)
            super().close()

    def mkstemp(prefix="", suffix="", dir=None):
        fd, name = real_mkstemp(prefix=prefix, suffix=suffix, dir=dir)
        destinations[fd] = Path(dir) / prefix[1:-1]  # ".<name>." -> <name>
        return fd, name

    def fdopen(fd, *args, **kwargs):
        target = destinations.pop(fd, None)
        return io.BufferedWriter(NearlyFull(fd)) if target is not None and fills(target) else real_fdopen(
            fd, *args, **kwargs)

    monkeypatch.setattr(io_module.tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(io_module.os, "fdopen", fdopen)


def test_full_disk_while_saving_keeps_the_old_checkpoint(data_root: Path, tmp_path: Path, capsys,
                                                          monkeypatch) -> None:
    run_dir = tmp_path / "run"
    last = run_dir / "weights" / "last.pt"
    saves = []

    def epoch_2(path: Path) -> bool:  # last.pt is saved twice per epoch (before and after evaluating)
        saves.extend([path] if path == last else [])
        return len(saves) > 2

    full_disk(monkeypatch, epoch_2)  # epoch 2's save finds the disk full
    config = write_config(tmp_path, data_root)
    before = snapshot(data_root, config)
    expect_error(train(capsys, "--config", str(config), "--run-dir", str(run_dir)),
                 str(last), "epoch 2", "No space left on device", "the previous file is unchanged")
    assert load_checkpoint(last)["epoch"] == 0
    assert not list(last.parent.glob(".*.tmp"))
    assert snapshot(data_root, config) == before


def test_full_disk_while_exporting_is_one_line_and_writes_nothing(ckpt: Path, tmp_path: Path, capsys,
                                                                   monkeypatch) -> None:
    from spyolo.cli import export as export_cli

    before = snapshot(ckpt)
    out = tmp_path / "out" / "model.pt"
    full_disk(monkeypatch, lambda path: True)
    expect_error(run(export_cli, ["--weights", str(ckpt), "--out", str(out)], capsys),
                 str(out), "No space left on device", "nothing was written")
    assert not out.exists() and not list(out.parent.glob("*"))
    pytest.importorskip("onnx")
    onnx_out = tmp_path / "out" / "model.onnx"
    monkeypatch.undo()
    full_disk(monkeypatch, lambda path: path.suffix == ".json")  # the sidecar, written second, fails
    expect_error(run(export_cli, ["--weights", str(ckpt), "--format", "onnx", "--out", str(onnx_out)], capsys),
                 str(onnx_out.with_suffix(".json")), "No space left on device")
    assert not list(onnx_out.parent.iterdir())  # both files or neither
    assert snapshot(ckpt) == before


def test_interrupted_synthetic_generation_is_regenerated(tmp_path: Path, caplog) -> None:
    from spyolo.config import DataConfig
    from spyolo.datasets import ensure_synthetic

    cfg = DataConfig(root=str(tmp_path), train_sets=["S:trainval"], test_sets=["S:test"], synthetic_train=4,
                     synthetic_test=2, synthetic_min_side=64, synthetic_max_side=80)
    ensure_synthetic(cfg)
    folder = tmp_path / "S"
    assert is_complete(folder)
    # killed half-way: the spec file is there, images partly, no completion marker
    (folder / ".synthetic_complete").unlink()
    for jpg in sorted((folder / "JPEGImages").iterdir())[2:]:
        jpg.unlink()
    with caplog.at_level(logging.INFO, logger="spyolo"):
        ensure_synthetic(cfg)
    assert "only in part" in caplog.text and is_complete(folder)
    assert len(list((folder / "JPEGImages").iterdir())) == 6


def test_bad_test_image_is_skipped_or_reported_before_training(data_root: Path, tmp_path: Path, capsys) -> None:
    test_ids = (data_root / "SYNTH" / "ImageSets" / "Main" / "test.txt").read_text().split()
    bad = data_root / "SYNTH" / "JPEGImages" / f"{test_ids[0]}.jpg"
    bad.write_bytes(b"\xff\xd8 not really a JPEG \xff\xd9")  # both markers, nothing between
    config = write_config(tmp_path, data_root, **{"train.epochs": 1})
    run_dir = tmp_path / "a"
    expect_error(train(capsys, "--config", str(config), "--run-dir", str(run_dir)), str(bad), "cannot decode")
    assert not run_dir.exists()  # the start-up check of the test split found it: no epoch was trained
    code, _out, err = train(capsys, "--config", str(config), "--run-dir", str(tmp_path / "b"), "data.skip_bad=true")
    assert code == 0, err


def test_demo_folder_goes_on_past_a_bad_file_and_empty_video(ckpt: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    _photo(folder / "a.jpg", 1)
    _photo(folder / "c.jpg", 2)
    (folder / "b.png").write_bytes(b"\x89PNG not really")
    before = snapshot(folder)
    out = tmp_path / "out"
    code, stdout, err = run(demo_cli, ["--weights", str(ckpt), "--source", str(folder), "--out", str(out),
                                       "--device", "cpu", "--no-progress"], capsys)
    expect_error((code, stdout, err), "1 of 3 images could not be read")
    assert f"skipped: {folder / 'b.png'}: cannot decode image" in err
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "a.json", "c.jpg", "c.json"]
    assert snapshot(folder) == before

    empty = _video(tmp_path / "empty.mp4", 0)
    expect_error(run(demo_cli, ["--weights", str(ckpt), "--source", str(empty), "--out", str(tmp_path / "v"),
                                "--device", "cpu", "--no-progress"], capsys), "empty.mp4")
    assert not (tmp_path / "v").exists() or not any((tmp_path / "v").iterdir())


def test_every_written_file_gets_normal_permissions(ckpt: Path, tiny_voc_root: Path, tmp_path: Path, capsys) -> None:
    old = os.umask(0o022)
    try:
        cfg = tiny_config(tiny_voc_root)
        weights = save_tiny_checkpoint(tmp_path / "w.pt", cfg, SYNTH)
        code, _out, err = run(eval_cli, ["--weights", str(weights), "--json", str(tmp_path / "m" / "metrics.json"),
                                         "--no-progress", "--device", "cpu", "--max-images", "2", "--spikes",
                                         "--out", str(tmp_path / "m")], capsys)
    finally:
        os.umask(old)
    assert code == 0, err
    written = sorted((tmp_path / "m").iterdir())
    assert {p.name for p in written} >= {"metrics.json", "spike_stats.json", "spike_stats.csv", "firing_rates.png"}
    for p in [*written, weights]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
    assert not [p for p in written if p.name.endswith(".tmp")]


# ------------------------------------------------------------ start-up: bad values and sources


def _pickle_with_code(path: Path, marker: Path) -> Path:
    import pickle

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path.write_bytes(pickle.dumps({"model": Payload()}, protocol=2))
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """Weights files a run may be pointed at: trained-looking checkpoints of the tiny model and
    broken or malicious files."""
    folder = tmp_path_factory.mktemp("sources")
    cfg = tiny_config(folder)
    spyv4 = save_tiny_checkpoint(folder / "spyv4.pt", cfg, SYNTH)
    ann_cfg = tiny_config(folder, {"model.kind": "ann"})
    save_tiny_checkpoint(folder / "ann_reordered.pt", ann_cfg, SYNTH[::-1])
    save_tiny_checkpoint(folder / "ann_other.pt", ann_cfg, [f"thing{i}" for i in range(len(SYNTH))])
    save_tiny_checkpoint(folder / "spyv4_reordered.pt", cfg, SYNTH[::-1])
    nan = load_checkpoint(spyv4)
    nan["model"] = {k: (torch.full_like(v, float("nan")) if v.is_floating_point() else v)
                    for k, v in nan["model"].items()}
    torch.save(nan, folder / "nan.pt")
    (folder / "notes.pt").write_text("these are not weights\n")
    data = spyv4.read_bytes()
    (folder / "truncated.pt").write_bytes(data[: len(data) // 2])
    _pickle_with_code(folder / "code.pt", folder / "code_ran")
    return {p.stem: p for p in folder.iterdir()}


@pytest.mark.parametrize("override, needles", [
    ("train.epochs=abc", ["train.epochs", "expected an integer", "'abc'"]),
    ("model.timesteps=0", ["model.timesteps must be >= 1"]),
    ("data.img_size=33", ["data.img_size must be a positive multiple of 32, got 33"]),
    ("train.batch_size=0", ["train.batch_size", "must be >= 1"]),
    ("train.lr=.inf", ["train.lr", "expected a finite number, got inf"]),
    ("train.lr=-1", ["train.lr must be > 0, got -1"]),
    ("data.workers=-1", ["data.workers must be >= 0, got -1"]),
    ("model.init_from={notes}", ["model.init_from", "notes.pt", "a text file, not a weights file"]),
    ("model.init_from={truncated}", ["model.init_from", "truncated.pt", "truncated or corrupt"]),
    ("model.init_from={code}", ["model.init_from", "code.pt", "other than tensors", "never loads"]),
    ("model.init_from={nan}", ["model.init_from", "nan.pt", "NaN or infinite values"]),
    ("train.distill_from={code}", ["train.distill_from", "code.pt", "other than tensors"]),
    ("train.distill_from={ann_reordered}", ["train.distill_from", "the same classes in another order",
                                            "needs the same class list"]),
    ("train.distill_from={ann_other}", ["train.distill_from", "other classes"]),
])
def test_a_failed_start_is_one_line_and_leaves_no_run_folder(data_root: Path, tmp_path: Path, capsys, sources,
                                                              override: str, needles: list[str]) -> None:
    config = write_config(tmp_path, data_root)
    before = snapshot(data_root, config, *sources.values())
    runs = tmp_path / "runs"
    override = override.format(**{k: str(v) for k, v in sources.items()})
    expect_error(train(capsys, "--config", str(config), "--run-dir", str(runs / "r"), override), *needles)
    assert not runs.exists()  # not even the parent it created; the next run gets runs/r, not runs/r2
    assert snapshot(data_root, config, *sources.values()) == before
    assert not (sources["code"].parent / "code_ran").exists()  # the pickled code never ran


def test_a_failed_start_removes_only_what_it_created(data_root: Path, tmp_path: Path, capsys, sources) -> None:
    config = write_config(tmp_path, data_root)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("a user's file")
    before = snapshot(mine)
    expect_error(train(capsys, "--config", str(config), "--run-dir", str(mine), "--exist-ok",
                       f"model.init_from={sources['nan']}"), "NaN or infinite values")
    assert snapshot(mine) == before and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]

    # a run that fails in its first epoch, before any checkpoint, leaves nothing either ...
    run_dir = tmp_path / "runs" / "r"
    expect_error(train(capsys, "--config", str(config), "--run-dir", str(run_dir), "train.lr=1e30",
                       "train.optimizer=sgd", "train.clip_norm=0"), "non-finite", "no checkpoint was saved")
    assert not (tmp_path / "runs").exists()
    # ... and the next start gets the folder it asked for
    code, _out, err = train(capsys, "--config", str(config), "--run-dir", str(run_dir), "train.epochs=1")
    assert code == 0, err
    assert (run_dir / "weights" / "last.pt").is_file()


def test_init_from_with_the_classes_in_another_order(data_root: Path, tmp_path: Path, capsys, sources) -> None:
    config = write_config(tmp_path, data_root, **{"train.epochs": 1, "train.max_iters_per_epoch": 1})
    before = snapshot(sources["spyv4_reordered"])
    run_dir = tmp_path / "reordered"
    code, _out, err = train(capsys, "--config", str(config), "--run-dir", str(run_dir),
                            f"model.init_from={sources['spyv4_reordered']}")
    assert code == 0, err
    line = "note: the source's classes are the model's in another order"
    report = (run_dir / "transfer.txt").read_text()
    assert line in err and line in report and "the heads' class channels were remapped by name" in report
    assert "0 skipped" in report
    assert snapshot(sources["spyv4_reordered"]) == before

    run_dir = tmp_path / "other"
    code, _out, err = train(capsys, "--config", str(config), "--run-dir", str(run_dir),
                            f"model.init_from={sources['ann_other']}", "model.init_heads=matching")
    assert code == 0, err
    report = (run_dir / "transfer.txt").read_text()
    assert "4 skipped" in report and "skipped head1.weight: the source's classes (thing0" in report
    assert "are not the model's (circle" in report


# ----------------------------------------------------------------------------- config files


def _alias_bomb(levels: int) -> str:
    """YAML whose ``model.kind`` nests ``levels`` lists of nine aliases of the one before."""
    lines = ["model:", "  kind:", '    - &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"    - &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_yaml_alias_bombs_and_huge_configs_are_refused_fast(tmp_path: Path, capsys) -> None:
    import time

    cases = {
        "bomb10.yaml": (_alias_bomb(10), ["expands to more than 100000 values"]),
        "bomb6.yaml": (_alias_bomb(6), ["expands to more than 100000 values"]),
        "bomb5.yaml": (_alias_bomb(5), ["model.kind: expected a string, got [["]),  # 66k values: typed, cut
        "loop.yaml": ("model:\n  kind: &a [1, *a]\n", ["a recursive alias"]),
        "deep.yaml": ("model:\n  kind: " + "[" * 5000 + "]" * 5000 + "\n", ["nested too deeply"]),
        "long.yaml": ("model:\n  kind: " + "k" * 100_000 + "\n", ["model.kind must be one of spyv4, ann; got 'kkk"]),
    }
    for name, (text, needles) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        start = time.perf_counter()
        line = expect_error(train(capsys, "--config", str(path)), str(path), *needles)
        assert time.perf_counter() - start < 20, name
        assert len(line) < 600, (name, len(line))
        assert path.read_text() == text
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as f:
        f.truncate(50 * 2**20)  # 50 MB (sparse): refused by its size, unread
    start = time.perf_counter()
    expect_error(train(capsys, "--config", str(huge)), str(huge), "50.0 MiB is too large for a config file")
    assert time.perf_counter() - start < 20
    long_value = "data.root=" + "x" * 100_000
    line = expect_error(train(capsys, "--config", str(tmp_path / "bomb5.yaml"), long_value), "model.kind")
    assert len(line) < 600


# ------------------------------------------------------------------------ resume is exact


def test_resume_after_a_kill_between_the_checkpoint_and_the_evaluation(data_root: Path, tmp_path: Path, capsys,
                                                                       monkeypatch) -> None:
    from spyolo.train.trainer import Trainer

    real_evaluate = Trainer.evaluate
    calls = []

    def scored(self, *args, **kwargs):
        """The real evaluation, its mAP replaced by a function of the weights evaluated: the untrained
        tiny model scores 0 at every epoch, which would make every epoch tie for best.pt."""
        calls.append(1)
        if kill_at and len(calls) == kill_at:  # this epoch's last.pt is saved, its evaluation never ends
            raise KeyboardInterrupt
        res = real_evaluate(self, *args, **kwargs)
        score = float(torch.sigmoid(self.core.head1.weight.detach().double().sum() * 100))
        return {**res, "map_voc07": score, "map_area": score / 2}

    monkeypatch.setattr(Trainer, "evaluate", scored)
    config = write_config(tmp_path, data_root, **{"train.epochs": 4})
    straight = tmp_path / "straight"
    kill_at = 0
    assert train(capsys, "--config", str(config), "--run-dir", str(straight))[0] == 0
    run_dir = tmp_path / "run"
    kill_at = len(calls) + 2  # during epoch 2's evaluation
    assert train(capsys, "--config", str(config), "--run-dir", str(run_dir))[0] == 130
    assert load_checkpoint(run_dir / "weights" / "last.pt")["eval_pending"] is True
    kill_at = 0
    code, _out, err = train(capsys, "--resume", str(run_dir))
    assert code == 0, err
    assert "epoch 2 was saved but not evaluated; evaluating it first" in err

    def table(folder: Path) -> list[dict]:
        import csv

        rows = list(csv.DictReader((folder / "results.csv").open()))
        return [{k: r[k] for k in ("epoch", "loss", "map_voc07", "map_area")} for r in rows]

    rows = table(run_dir)
    assert rows == table(straight)  # every epoch evaluated, with the same numbers
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"] and all(r["map_voc07"] != "nan" for r in rows)
    assert len({r["map_voc07"] for r in rows}) == 4  # distinct scores: best.pt is a real choice
    for name in ("best.pt", "last.pt"):
        a, b = load_checkpoint(run_dir / "weights" / name), load_checkpoint(straight / "weights" / name)
        assert a["epoch"] == b["epoch"] and a["best"] == b["best"] and not a["eval_pending"]
        for key, value in a["model"].items():
            assert torch.equal(value, b["model"][key]), (name, key)


# ---------------------------------------------------------------------------------- demo


def test_demo_output_names_never_collide(ckpt: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed, name in enumerate(["a.jpg", "a.png", "a_jpg.jpg", "A.JPG"]):
        _photo(folder / name, seed)
    before = snapshot(folder)
    out = tmp_path / "out"
    code, stdout, err = run(demo_cli, ["--weights", str(ckpt), "--source", str(folder), "--out", str(out),
                                       "--device", "cpu", "--no-progress"], capsys)
    assert code == 0, err
    assert "wrote 4 annotated images and 4 JSON files" in stdout
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 8 and len({n.casefold() for n in written}) == 8
    sources = {Path(json.loads((out / n).read_text())["image"]).name for n in written if n.endswith(".json")}
    assert sources == {"a.jpg", "a.png", "a_jpg.jpg", "A.JPG"}  # one result per input, none lost
    assert snapshot(folder) == before


def test_demo_odd_sources(ckpt: Path, tmp_path: Path, capsys) -> None:
    from PIL import Image

    folder = tmp_path / "my photos ü"
    folder.mkdir()
    cv2.imwrite(str(folder / "dot.png"), np.full((1, 1, 3), 200, np.uint8))  # a 1x1 image
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(folder / "anim.gif")
    _photo(folder / "föto 1.jpg")
    os.symlink(folder / "loop_b", folder / "loop_a.jpg")  # a symbolic link loop
    os.symlink(folder / "loop_a.jpg", folder / "loop_b")
    os.symlink(folder, folder / "self")  # a folder linking to itself
    (tmp_path / "clip.mp4").write_text("not a video\n")
    before = snapshot(folder, tmp_path / "clip.mp4")

    def demo(source: Path, out: str) -> tuple[int, str, str]:
        return run(demo_cli, ["--weights", str(ckpt), "--source", str(source), "--out", str(tmp_path / out),
                              "--device", "cpu", "--no-progress"], capsys)

    code, stdout, err = demo(folder, "o1")
    assert code == 0, err
    assert "wrote 3 annotated images" in stdout
    stems = sorted(p.stem for p in (tmp_path / "o1").iterdir())
    assert stems == sorted(["anim", "anim", "dot", "dot", "föto 1", "föto 1"])
    code, _out, err = demo(folder / "föto 1.jpg", "o2")
    assert code == 0 and (tmp_path / "o2" / "föto 1.json").is_file(), err
    expect_error(demo(tmp_path / "clip.mp4", "o3"), "clip.mp4", "cannot open this video")
    expect_error(demo(folder / "loop_a.jpg", "o4"), "loop_a.jpg", "a symbolic link to nothing")
    assert not (tmp_path / "o3").exists() and not (tmp_path / "o4").exists()
    assert snapshot(folder, tmp_path / "clip.mp4") == before


# ------------------------------------------------------------------------------- export


def test_export_out_must_not_be_a_folder(ckpt: Path, tmp_path: Path, capsys) -> None:
    from spyolo.cli import export as export_cli

    before = snapshot(ckpt)
    folder = tmp_path / "weights"
    folder.mkdir()
    for extra in ([], ["--exist-ok"]):
        expect_error(run(export_cli, ["--weights", str(ckpt), "--out", str(folder), *extra], capsys),
                     str(folder), "a folder stands where the output file should be written")
    assert not list(folder.iterdir()) and not list(tmp_path.glob(".*.tmp"))
    (tmp_path / "m.json").mkdir()  # where the sidecar would go
    expect_error(run(export_cli, ["--weights", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "m.onnx"),
                                  "--exist-ok"], capsys), str(tmp_path / "m.json"), "ONNX sidecar")
    assert not (tmp_path / "m.onnx").exists()  # both files or neither
    assert snapshot(ckpt) == before


@pytest.fixture(scope="module")
def onnx_model(ckpt: Path, tmp_path_factory) -> Path:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from spyolo.export import export_onnx

    return export_onnx(ckpt, tmp_path_factory.mktemp("onnx") / "model.onnx")


def _scaled(meta: dict, factor: float) -> None:
    meta["heads"]["anchors"] = [[v * factor for v in a] for a in meta["heads"]["anchors"]]


def _resized_input(meta: dict) -> None:  # a consistent sidecar for another input size
    meta["input"]["shape"] = [3, 96, 96]
    _scaled(meta, 96 / 64)


SIDECAR_EDITS = {
    "zero stride": (lambda m: m["heads"].update(strides=[0, 16]), "'heads.strides' must be two positive integers"),
    "swapped strides": (lambda m: m["heads"].update(strides=[16, 32]), "'heads.strides' is [16, 32], but the graph's "
                                                                       "head1 is a 2x2 grid at 64 px, i.e. stride 32"),
    "anchors x10": (lambda m: _scaled(m, 10), "'heads.anchors' must be anchors_ref x input size / anchor_ref_size"),
    "resize": (lambda m: m["input"].update(resize="crop"), "'input.resize' must be one of stretch, letterbox"),
    "interpolation": (lambda m: m["input"].update(interpolation="area"), "'input.interpolation' must be one of"),
    "scale_xy": (lambda m: m["heads"].update(scale_xy=2.5), "'heads.scale_xy' must be a number in [1, 2]"),
    "5 anchors": (lambda m: m["heads"].update(anchors=m["heads"]["anchors"][:5]), "'heads.masks' must be two lists "
                                                                                  "of anchor indices in 0..4"),
    "mask out of range": (lambda m: m["heads"].update(masks=[[3, 4, 6], [1, 2, 3]]), "'heads.masks'"),
    "no anchors": (lambda m: m["heads"].pop("anchors"), "'heads.anchors' is missing"),
    "state without module": (lambda m: m["states"][0].pop("module"), "'states[0]' must hold input, output and module"),
    "input shape": (_resized_input, "'input.shape' is [3, 96, 96], but the graph model.onnx takes images of "
                                    "[3, 64, 64]"),
    "state shape": (lambda m: m["states"][1].update(shape=[16, 8, 8]), "'states[1].shape' is [16, 8, 8], but the "
                                                                       "graph model.onnx takes v_1 of [16, 16, 16]"),
    "class names": (lambda m: m.update(class_names=["cat", "dog"]), "'class_names' lists 2 classes, but the graph's "
                                                                    "head1 has 24 channels"),
}


@pytest.mark.parametrize("edit", list(SIDECAR_EDITS))
def test_onnx_sidecar_is_checked_against_itself_and_the_graph(onnx_model: Path, tmp_path: Path, capsys,
                                                              edit: str) -> None:
    change, needle = SIDECAR_EDITS[edit]
    model = tmp_path / "model.onnx"
    shutil.copy(onnx_model, model)
    meta = json.loads(onnx_model.with_suffix(".json").read_text())
    change(meta)
    model.with_suffix(".json").write_text(json.dumps(meta))
    image = _photo(tmp_path / "photo.png")
    before = snapshot(tmp_path)
    expect_error(run(demo_cli, ["--weights", str(model), "--source", str(image), "--out", str(tmp_path / "out"),
                                "--no-progress"], capsys), f"{model.with_suffix('.json')}: sidecar key {needle}")
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------- COCO


def _coco_case(data: dict, case: str) -> None:
    image, ann = data["images"][0], data["annotations"][0]
    if case == "category id list":
        ann["category_id"] = [ann["category_id"]]
    elif case == "image id list":
        ann["image_id"] = [ann["image_id"]]
    elif case == "huge box":
        ann["bbox"][2] = 10**400
    elif case == "huge width":
        image["width"] = 10**400
    elif case == "no images":
        data["images"], data["annotations"] = [], []
    elif case == "iscrowd no":
        ann["iscrowd"] = "no"
    elif case == "name null":
        data["categories"][0]["name"] = None
    elif case == "one file, two ids":
        data["images"].append(dict(image, id=10_000))
    elif case == "no annotations":
        del data["annotations"]


COCO_CASES = {
    "category id list": "has unknown category id [",
    "image id list": "refers to image id [1], which the file does not list (an image id is an integer)",
    "huge box": "has a malformed bbox",
    "huge width": "needs positive integer 'width' and 'height'",
    "no images": "the file lists no images",
    "iscrowd no": "has iscrowd 'no' (expected 0 or 1)",
    "name null": "category 0 needs an integer 'id' and a 'name' (a non-empty string)",
    "one file, two ids": "images 1 and 10000 are the same file",
    "no annotations": "no 'annotations' list",
}


@pytest.mark.parametrize("case", list(COCO_CASES))
def test_coco_files_that_are_wrong_in_plausible_ways(data_root: Path, tmp_path: Path, capsys, case: str) -> None:
    from spyolo.data.coco import voc_split_to_coco

    data = voc_split_to_coco(data_root / "SYNTH", "trainval", SYNTH)
    _coco_case(data, case)
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps(data))
    config = write_config(tmp_path, data_root, **{"data.train_sets": f"[coco:{ann}:SYNTH/JPEGImages]"})
    before = snapshot(data_root, ann)
    runs = tmp_path / "runs"
    expect_error(train(capsys, "--config", str(config), "--run-dir", str(runs / "r")), str(ann), COCO_CASES[case])
    assert snapshot(data_root, ann) == before and not runs.exists()
