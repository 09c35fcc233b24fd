"""Benchmark harness: FLOP counts, probe rows, the separable training step, reports, GPU-check logic."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from spyolo.bench.flops import forward_flops_per_image
from spyolo.bench.probe import ProbeConfig, ProbeSession, random_batch
from spyolo.bench.report import markdown_report, markdown_table, write_report
from spyolo.bench.suite import expand_grid, session_key
from spyolo.loss import YOLOLoss
from spyolo.models import SPYv4, YOLOv4Tiny
from spyolo.models.decode import scale_anchors
from spyolo.snn.ltc import ltc_layers
from spyolo.train.fptt import FPTT
from spyolo.train.optim import build_optimizer
from spyolo.train.steps import StepSettings, TrainStep
from spyolo.utils.runtime import resolve_runtime

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(batch=2, img_size=64, width=0.25, num_classes=4, device="cpu", warmup=1, iters=1, threads=1)



def _conv_flops(cin: int, cout: int, k: int, side: int) -> int:
    return 2 * cin * cout * k * k * side * side


# YOLOv4-tiny at 416 px, 20 classes: (in, out, kernel, output side) of every Conv-BN layer in forward order.
_LAYERS = [
    (3, 32, 3, 208), (32, 64, 3, 104),
    (64, 64, 3, 104), (32, 32, 3, 104), (32, 32, 3, 104), (64, 64, 1, 104),  # CSP block 1
    (128, 128, 3, 52), (64, 64, 3, 52), (64, 64, 3, 52), (128, 128, 1, 52),  # CSP block 2
    (256, 256, 3, 26), (128, 128, 3, 26), (128, 128, 3, 26), (256, 256, 1, 26),  # CSP block 3
    (512, 512, 3, 13), (512, 256, 1, 13), (256, 512, 3, 13), (256, 128, 1, 13), (384, 256, 3, 26),
]
_HEADS = [(512, 75, 1, 13), (256, 75, 1, 26)]


def test_forward_flops_match_hand_counts():
    ann_expected = sum(_conv_flops(*layer) for layer in _LAYERS + _HEADS)
    # every LTC layer adds a 3x3 out->out tau convolution at its output size (conv_up's after the x2 upsample)
    tau = sum(_conv_flops(o, o, 3, side * (2 if (i, o, k, side) == (256, 128, 1, 13) else 1)) for i, o, k, side in _LAYERS)
    assert ann_expected == 6_814_426_112
    assert ann_expected + tau == 17_181_172_736  # reference section 2: 17.18 GFLOP per image and timestep
    assert forward_flops_per_image(YOLOv4Tiny(num_classes=20, width=1.0), 416, "cpu") == ann_expected
    assert forward_flops_per_image(SPYv4(num_classes=20, width=1.0), 416, "cpu") == ann_expected + tau


def test_probe_session_rows_and_conventions():
    session = ProbeSession(ProbeConfig(method="fptt", timesteps=2, flops=True, **TINY))
    rows = [session.measure(t) for t in (1, 2)]
    for t, row in zip((1, 2), rows):
        assert row["timesteps"] == t and row["peak_kind"] == "cpu_peak_rss" and row["ltc_backend"] == "reference"
        sec = row["sec_per_iter"]
        assert sec == row["sec_per_iter_all"][0] > 0
        assert row["images_per_s"] == pytest.approx(2 / sec)
        assert row["ms_per_image_timestep"] == pytest.approx(1000 * sec / (2 * t))
        flops = row["gflops_per_image_timestep"] * 1e9
        assert row["tflops_achieved"] == pytest.approx(3 * flops * 2 * t / sec / 1e12)
        assert row["sync_free"] is None  # the CUDA sync check does not apply on CPU
    infer = ProbeSession(ProbeConfig(method="infer", timesteps=3, flops=True, **TINY)).measure()
    assert infer["tflops_achieved"] == pytest.approx(
        infer["gflops_per_image_timestep"] * 1e9 * 2 * 3 / infer["sec_per_iter"] / 1e12
    )
    ann = ProbeSession(ProbeConfig(method="ann", timesteps=5, **TINY)).measure()
    assert ann["ms_per_image_timestep"] == pytest.approx(1000 * ann["sec_per_iter"] / 2)  # one step, whatever T
    with pytest.raises(ValueError, match="multiple of 32"):
        ProbeSession(ProbeConfig(method="fptt", **{**TINY, "img_size": 100}))


def test_probe_cli_prints_one_json_line():
    cmd = [sys.executable, "-m", "spyolo.bench.probe", "--method", "bptt", "--timesteps", "2", "--batch", "1",
           "--img-size", "64", "--width", "0.25", "--warmup", "0", "--iters", "1", "--device", "cpu",
           "--threads", "1", "--no-compile"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    assert row["method"] == "bptt" and row["peak_kind"] == "cpu_peak_rss" and row["peak_bytes"] > 0


def _make_step(model, method, timesteps, state_init="zero", eager_states=True, generator=None):
    loss_fn = YOLOLoss(scale_anchors(model.anchors, 64, 416), model.masks, 4, strides=model.strides)
    opt = build_optimizer(model, "sgd", 1e-2, 0.9, 0.0)
    fptt = FPTT(model.parameters()) if method == "fptt" else None
    settings = StepSettings(method, timesteps, state_init=state_init, eager_states=eager_states)
    return TrainStep(model, loss_fn, opt, settings, resolve_runtime("cpu", "off", "off"), fptt=fptt,
                     state_generator=generator)


@pytest.mark.parametrize("method", ["fptt", "bptt"])
def test_prepared_states_and_split_loop_give_the_same_training(method):
    torch.manual_seed(0)
    base = SPYv4(num_classes=4, width=0.25).double()
    cfg = ProbeConfig(batch=2, img_size=64, num_classes=4)
    batches = [random_batch(cfg, torch.device("cpu"), torch.Generator().manual_seed(s)) for s in (1, 2)]
    results = []
    for eager_states, split in ((False, False), (True, False), (True, True)):
        model = copy.deepcopy(base)
        step = _make_step(model, method, 3, state_init="uniform", eager_states=eager_states,
                          generator=torch.Generator().manual_seed(5))
        losses = []
        for images, targets in batches:  # the second batch reuses the layouts recorded at the first
            images, targets = images.double(), targets.double()
            if split:
                built = step.prepare(images, targets)
                losses.append(step.time_loop(images, built)[0])
            else:
                losses.append(step(images, targets)["loss"])
        results.append((torch.stack(losses), [p.detach().clone() for p in model.parameters()]))
    for losses, params in results[1:]:
        torch.testing.assert_close(losses, results[0][0], rtol=0, atol=0)
        for a, b in zip(params, results[0][1]):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_prepare_creates_states_once_their_layouts_are_known():
    torch.manual_seed(0)
    model = SPYv4(num_classes=4, width=0.25)
    step = _make_step(model, "fptt", 2)
    images, targets = random_batch(ProbeConfig(batch=2, img_size=64, num_classes=4), torch.device("cpu"),
                                   torch.Generator().manual_seed(3))
    step.prepare(images, targets)
    assert all(layer.v is None for _, layer in ltc_layers(model))  # first batch: lazy
    step.time_loop(images, step.prepare(images, targets))
    step.prepare(images, targets)
    states = [layer.v for _, layer in ltc_layers(model)]
    assert all(v is not None and not v.requires_grad and float(v.abs().max()) == 0.0 for v in states)
    step.prepare(images[:1], targets[targets[:, 0] == 0])  # a new batch size: lazy again
    assert all(layer.v is None for _, layer in ltc_layers(model))


@pytest.mark.parametrize("method", ["fptt", "bptt"])
def test_compiled_train_step_compiles_once_per_state_kind(method):
    graphs, calls = [], []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)

        def run(*args):
            calls.append(len(graphs))
            return gm.forward(*args)

        return run

    torch.manual_seed(0)
    model = SPYv4(num_classes=4, width=0.25)
    step = _make_step(torch.compile(model, backend=counting_backend), method, 3)
    assert step.eager_model is model
    cfg = ProbeConfig(batch=2, img_size=64, num_classes=4)
    calls_per_batch = []
    for seed in (1, 2, 3):
        images, targets = random_batch(cfg, torch.device("cpu"), torch.Generator().manual_seed(seed))
        before = len(calls)
        out = step(images, targets)
        calls_per_batch.append(len(calls) - before)
        assert torch.isfinite(out["loss"])
    if method == "fptt":
        # batch 1: step 0 uncompiled (lazy states), steps 1-2 compiled; then every step, one graph
        assert calls_per_batch == [2, 3, 3] and len(graphs) == 1
    else:
        # BPTT: batch 1 wholly uncompiled (one backward must not mix uncompiled and compiled
        # BatchNorm steps); then one graph for step 0 (state without gradient), one for steps 1-2
        assert calls_per_batch == [0, 3, 3] and len(graphs) == 2
    assert all(layer.v is not None for _, layer in ltc_layers(model))


def test_expand_grid_order_and_session_sharing():
    base = ProbeConfig(width=1.0)
    configs = expand_grid(base, ["fptt", "ann"], [2, 8], [64], [416])
    assert [(c.method, c.timesteps) for c in configs] == [("fptt", 2), ("fptt", 8), ("ann", 1)]
    assert session_key(configs[0]) == session_key(configs[1]) != session_key(configs[2])
    assert session_key(replace(configs[0], warmup=5, iters=9)) == session_key(configs[0])
    with pytest.raises(ValueError, match="method must be one of"):
        expand_grid(base, ["fpt"], [2], [64], [416])


def test_reports_are_written_with_tables(tmp_path):
    ok = {"method": "fptt", "timesteps": 8, "batch": 64, "img_size": 416, "width": 1.0, "compile": True,
          "amp_dtype": "bfloat16", "ltc_backend": "fused", "images_per_s": 251.26, "ms_per_image_timestep": 0.4975,
          "peak_gib": 9.123, "gflops_per_image_timestep": 17.18, "tflops_achieved": 103.6, "sync_free": True}
    failed = {"method": "bptt", "timesteps": 16, "batch": 64, "img_size": 416, "width": 1.0, "error": "OOM"}
    table = markdown_table([ok, failed])
    lines = table.splitlines()
    assert lines[0].startswith("| method | T | batch |") and len(lines) == 4
    assert "| fptt | 8 | 64 | 416 | 1.00 | yes | bfloat16 | fused | 251 | 0.50 | 9.12 | 17.2 | 104 | yes |" == lines[2]
    assert "failed: OOM" in lines[3]
    report = {"command": "python tools/benchmark.py --x", "machine": {"cpu_model": "X", "gpus": [{"name": "G"}]},
              "results": [ok, failed],
              "cpu_ratio": {"batch": 8, "img_size": 160, "width": 0.5, "timesteps": 4, "rounds": 5,
                            "ltc_backend": "reference", "fptt_step_s": 0.5, "ann_step_s": 0.2, "ratio": 2.5,
                            "flops_ratio": 2.5, "target": 3.0}}
    json_path, md_path = write_report(tmp_path / "out", report, stem="b")
    assert json.loads(json_path.read_text())["results"][0]["images_per_s"] == 251.26
    md = md_path.read_text()
    assert md == markdown_report(report) + "\n"
    assert "`python tools/benchmark.py --x`" in md and "GPU G" in md and "<= 3.0 (met)" in md


def _load_tool(name: str):
    module_name = f"spyolo_tool_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up there
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "tools"))
    return module


def test_benchmark_cli_cpu_ratio_and_grid(tmp_path):
    bench = _load_tool("benchmark")
    out = tmp_path / "bench"
    rc = bench.main(["--cpu-ratio", "--batch", "1", "--img-size", "64", "--width", "0.25", "--timesteps", "2",
                     "--rounds", "2", "--warmup", "0", "--threads", "1", "--out", str(out)])
    assert rc == 0
    report = json.loads((out / "benchmark.json").read_text())
    ratio = report["cpu_ratio"]
    assert len(ratio["ratios_all"]) == 2 and ratio["ratio"] > 0 and ratio["timesteps"] == 2
    assert ratio["flops_ratio"] == pytest.approx(2.5, abs=0.3)
    assert report["machine"]["torch"] == torch.__version__
    assert report["command"].startswith("python tools/benchmark.py --cpu-ratio")
    assert "## CPU ratio" in (out / "benchmark.md").read_text()


def test_gpu_check_targets_and_budgeted_parts():
    gpu_check = _load_tool("gpu_check")
    parts = gpu_check.build_parts("cuda", tiny=False)
    names = [p.name for p in parts]
    assert names[:4] == ["info", "fused", "sync", "bench_fptt"]
    fptt = next(p for p in parts if p.name == "bench_fptt")
    assert fptt.argv[fptt.argv.index("--timesteps") + 1] == "2,8,16" and "--compile" in fptt.argv
    common = {"batch": 64, "img_size": 416, "compile": True, "compile_mode": "default"}
    rows = [
        {"method": "fptt", "timesteps": 2, "images_per_s": 300.0, "peak_gib": 9.0, "peak_bytes": 100, "sync_free": True},
        {"method": "fptt", "timesteps": 8, "images_per_s": 260.0, "peak_gib": 9.0, "peak_bytes": 101, "sync_free": True},
        {"method": "fptt", "timesteps": 16, "images_per_s": 255.0, "peak_gib": 9.1, "peak_bytes": 106},
        {"method": "bptt", "timesteps": 2, "images_per_s": 100.0, "peak_gib": 10.0, "peak_bytes": 10},
        {"method": "bptt", "timesteps": 8, "images_per_s": 90.0, "peak_gib": 30.0, "peak_bytes": 30},
        {"method": "infer", "timesteps": 8, "images_per_s": 590.0, "peak_gib": 2.0, "peak_bytes": 5},
    ]
    rows = [{**common, **r} for r in rows]
    checks = {c["check"]: c for c in gpu_check._targets(rows, parts)}
    assert checks["FPTT T=8 b64 416 images/s"]["passed"] is True
    assert checks["FPTT T=8 b64 peak GiB"]["passed"] is True
    assert checks["FPTT peak T=16 / T=2"]["value"] == 1.06 and checks["FPTT peak T=16 / T=2"]["passed"] is False
    assert checks["BPTT peak T=8 / T=2"]["passed"] is True
    assert checks["inference T=8 b64 images/s"]["passed"] is False
    assert checks["time loop sync-free (compiled runs)"]["value"] == "2/2"
    assert checks["fused LTC kernels match the reference"]["passed"] is False  # that part has not run


def test_loader_throughput_on_a_small_synthetic_set(tmp_path):
    from spyolo.bench.loader import LoaderConfig, measure_loader

    overrides = [f"data.root={tmp_path}", "data.synthetic_train=8", "data.synthetic_test=1"]
    cfg = LoaderConfig(config=str(ROOT / "configs" / "spyv4_synthetic.yaml"), img_size=96, workers=[0, 1], batch=4,
                       batches=2, warmup_batches=1, overrides=overrides)
    rows = measure_loader(cfg)  # 3 batches of 4 from 8 images: runs into a second epoch
    assert [r["workers"] for r in rows] == [0, 1]
    for row in rows:
        assert row["dataset_images"] == 8 and row["img_size"] == 96 and row["batches"] == 2
        assert row["images_per_s"] == pytest.approx(2 * 4 / row["seconds"])
    with pytest.raises(ValueError, match="fewer than one batch of 16"):
        measure_loader(replace(cfg, batch=16, workers=[0]))
    with pytest.raises(FileNotFoundError, match="nope.yaml: config file not found"):
        measure_loader(replace(cfg, config=str(tmp_path / "nope.yaml")))
