"""DistributedDataParallel: 2 CPU processes (gloo) match a single process on the same global batch.

Each rank gets the same local batch x, so the global batch is [x; x]. Batch-norm statistics of
[x; x] equal those of x and the YOLO loss is normalised by the positives of the batch, so the
single-process gradient on [x; x] equals each rank's, and DDP's all-reduce (mean) must leave
the weights exactly where the single process puts them, after several FPTT timesteps.
A second test runs the real Trainer under two gloo processes and checks that rank 0 alone
writes the run folder.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

pytestmark = pytest.mark.slow  # subprocesses; `pytest -m "not slow"` skips them

ROOT = Path(__file__).resolve().parents[1]
T, STEPS = 2, 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _setup(seed: int = 0):
    from benchmarks.probe import ProbeConfig, random_batch
    from spyolo.loss import YOLOLoss
    from spyolo.models import SPYv4
    from spyolo.models.heads import scale_anchors

    torch.manual_seed(seed)
    model = SPYv4(num_classes=3, width=0.25)
    cfg = ProbeConfig(batch=2, img_size=64, num_classes=3)
    x, targets = random_batch(cfg, torch.device("cpu"), torch.Generator().manual_seed(1))
    loss_fn = YOLOLoss(scale_anchors(model.anchors, 64, 416), model.masks, 3, strides=model.strides)
    return model, loss_fn, x, targets


def _train(model, loss_fn, x, targets, steps=STEPS):
    from spyolo.train.fptt import FPTT
    from spyolo.train.steps import StepSettings, TrainStep
    from spyolo.utils.runtime import resolve_runtime

    core = model.module if hasattr(model, "module") else model
    opt = torch.optim.SGD(core.parameters(), lr=0.05, momentum=0.9)
    step = TrainStep(model, loss_fn, opt, StepSettings("fptt", T), resolve_runtime("cpu", "off", "off"),
                     fptt=FPTT(core.parameters()))
    for _ in range(steps):
        step(x, targets)
    return core


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model, loss_fn, x, targets = _setup()
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        core = _train(ddp, loss_fn, x, targets)
        if rank == 0:
            torch.save({k: v.clone() for k, v in core.state_dict().items()}, out)
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_match_single_process(tmp_path):
    out = str(tmp_path / "ddp.pt")
    mp.spawn(_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    ddp_state = torch.load(out, weights_only=True)

    model, loss_fn, x, targets = _setup()
    rows2 = targets.clone()
    rows2[:, 0] += x.shape[0]
    single = _train(model, loss_fn, torch.cat([x, x]), torch.cat([targets, rows2]))
    start, *_ = _setup()
    moved = 0
    for name, p in single.named_parameters():
        torch.testing.assert_close(ddp_state[name], p.detach(), rtol=1e-5, atol=1e-6, msg=name)
        moved += not torch.equal(p.detach(), start.state_dict()[name])
    assert moved > 0.9 * len(list(single.parameters()))


def test_trainer_under_torchrun_gloo(tiny_voc_root, tmp_path):
    run = tmp_path / "ddp_run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
        str(ROOT / "tools" / "train.py"), "--config", str(ROOT / "configs" / "spyv4_synthetic.yaml"),
        "--run-dir", str(run), "--exist-ok", "--no-progress",
        f"data.root={tiny_voc_root}", "data.img_size=64", "data.workers=0", "data.synthetic_train=0",
        "model.width=0.25", "model.timesteps=2", "train.epochs=1", "train.batch_size=4",
        "train.max_iters_per_epoch=2", "eval.max_images=4", "train.device=cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (run / "weights" / "last.pt").is_file() and (run / "results.csv").is_file()
    assert (run / "results.csv").read_text().count("\n") == 2  # header + one epoch, written once (rank 0)
