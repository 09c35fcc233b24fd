"""Benchmark harness: FLOP counts, probe rows, reports, the command runner, GPU-check logic."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from benchmarks.probe import ProbeConfig, ProbeSession, forward_flops_per_image
from benchmarks.report import markdown_report, markdown_table, write_report
from benchmarks.suite import expand_grid, session_key
from spyolo.models import SPYv4, YOLOv4Tiny

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
    tau = sum(_conv_flops(o, o, 3, side * (2 if (i, o, k, side) == (256, 128, 1, 13) else 1))
              for i, o, k, side in _LAYERS)
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
    cmd = [sys.executable, "-m", "benchmarks.probe", "--method", "bptt", "--timesteps", "2", "--batch", "1",
           "--img-size", "64", "--width", "0.25", "--warmup", "0", "--iters", "1", "--device", "cpu",
           "--threads", "1", "--no-compile"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    assert row["method"] == "bptt" and row["peak_kind"] == "cpu_peak_rss" and row["peak_bytes"] > 0


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
    report = {"command": "python -m benchmarks.benchmark --x", "machine": {"cpu_model": "X", "gpus": [{"name": "G"}]},
              "results": [ok, failed],
              "cpu_ratio": {"batch": 8, "img_size": 160, "width": 0.5, "timesteps": 4, "rounds": 5,
                            "ltc_backend": "reference", "fptt_step_s": 0.5, "ann_step_s": 0.2, "ratio": 2.5,
                            "flops_ratio": 2.5, "target": 3.0}}
    json_path, md_path = write_report(tmp_path / "out", report, stem="b")
    assert json.loads(json_path.read_text())["results"][0]["images_per_s"] == 251.26
    md = md_path.read_text()
    assert md == markdown_report(report) + "\n"
    assert "`python -m benchmarks.benchmark --x`" in md and "GPU G" in md and "<= 3.0 (met)" in md


def _load_tool(name: str):
    return importlib.import_module(f"benchmarks.{name}")


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
    assert report["command"].startswith("python -m benchmarks.benchmark --cpu-ratio")
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
        {"method": "fptt", "timesteps": 2, "images_per_s": 300.0, "peak_gib": 9.0, "peak_bytes": 100,
         "sync_free": True},
        {"method": "fptt", "timesteps": 8, "images_per_s": 260.0, "peak_gib": 9.0, "peak_bytes": 101,
         "sync_free": True},
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
    from benchmarks.loader import LoaderConfig, measure_loader

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


PROFILE_TINY = dict(batch=2, img_size=64, width=0.125, num_classes=4, device="cpu", warmup=1, iters=1, threads=1)


def test_profile_probe_on_cpu_sums_and_ranks(tmp_path):
    from benchmarks.profile import CATEGORIES, profile_probe

    trace = tmp_path / "t.trace.json"
    prof = profile_probe(ProbeConfig(method="fptt", timesteps=2, **PROFILE_TINY), iters=1, trace_path=trace,
                         row_limit=10)
    json.dumps(prof)  # JSON-able as it is
    assert prof["metric"] == "self CPU time" and prof["iters"] == 1 and prof["top_kernels"] == []
    assert prof["config_name"] == "fptt_T2_b2_64px" and prof["ltc_backend"] == "reference"
    assert prof["total_ms"] > 0 and prof["wall_ms_per_iter"] > 0 and prof["total_ms_per_iter"] == prof["total_ms"]
    ops = prof["top_ops"]
    assert 0 < len(ops) <= 10
    assert all(op["self_ms"] > 0 and op["calls"] >= 1 and op["category"] in CATEGORIES for op in ops)
    assert [op["self_ms"] for op in ops] == sorted((op["self_ms"] for op in ops), reverse=True)
    assert ops[0]["percent"] == pytest.approx(100 * ops[0]["self_ms"] / prof["total_ms"])
    cats = {c["category"]: c for c in prof["categories"]}
    assert list(cats) == list(CATEGORIES)
    assert sum(c["ms"] for c in cats.values()) == pytest.approx(prof["total_ms"], rel=1e-6)
    assert sum(c["percent"] for c in cats.values()) == pytest.approx(100.0)
    for name in ("convolution", "batch_norm", "elementwise", "optimizer", "loss"):
        assert cats[name]["ms"] > 0, name  # every part of an FPTT step is seen
    assert trace.is_file() and trace.stat().st_size > 0


def test_profile_categories_by_name_chain():
    from benchmarks.profile import LABEL_ITERATION, LABEL_LOSS, LABEL_UPDATE, classify

    cases = {
        ("aten::mkldnn_convolution", "aten::_convolution", "aten::convolution", "aten::conv2d"): "convolution",
        ("aten::convolution_backward", "autograd::engine::evaluate_function: ConvolutionBackward0"): "convolution",
        ("aten::cudnn_convolution", "aten::conv2d", "sm90_xmma_fprop_implicit_gemm_bf16"): "convolution",
        ("aten::native_batch_norm", "aten::_batch_norm_impl_index", "aten::batch_norm"): "batch_norm",
        ("triton_red_fused__native_batch_norm_legit_functional_3", "CompiledFunction"): "batch_norm",
        ("aten::sigmoid", LABEL_ITERATION): "elementwise",
        ("aten::mul", "MultiGaussianSpikeBackward"): "elementwise",
        ("aten::_to_copy", "aten::to", "MultiGaussianSpike"): "elementwise",  # the surrogate's own cast
        ("triton_poi_fused_add_convert_element_type_mul_sigmoid_0", "CompiledFunction"): "elementwise",
        ("autograd::engine::evaluate_function: LeakyReluBackward0",): "elementwise",
        ("aten::mul", LABEL_LOSS, LABEL_ITERATION): "loss",
        ("aten::sigmoid", "aten::binary_cross_entropy_with_logits_backward",
         "autograd::engine::evaluate_function: BinaryCrossEntropyWithLogitsBackward0"): "loss",
        ("aten::add_", "aten::_foreach_add_", "Optimizer.step#Adam.step", LABEL_UPDATE): "optimizer",
        ("aten::linalg_vector_norm", "aten::_foreach_norm"): "optimizer",
        ("aten::_to_copy", "aten::to", "aten::conv2d"): "memory",  # autocast's weight cast
        ("aten::copy_", "cudaMemcpyAsync", "Memcpy HtoD (Pageable -> Device)"): "memory",
        ("aten::cat", LABEL_ITERATION): "memory",
        (LABEL_ITERATION,): "host",
        ("aten::max_pool2d_with_indices", "aten::max_pool2d", LABEL_ITERATION): "other",
        ("autograd::engine::evaluate_function: ExpandBackward0",): "other",
    }
    for chain, expected in cases.items():
        assert classify(chain) == expected, chain


def test_profile_summary_attributes_device_time_to_kernels():
    """The CUDA path on fake events: kernels through their operators, annotations left out."""
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    from benchmarks.profile import summarize_events

    def cpu(name, parent=None, kernels=(), self_us=5.0):
        return SimpleNamespace(name=name, device_type=DeviceType.CPU, is_async=False, cpu_parent=parent,
                               self_cpu_time_total=self_us,
                               kernels=[SimpleNamespace(name=k, duration=d) for k, d in kernels])

    def gpu(name, us, annotation=False):
        return SimpleNamespace(name=name, device_type=DeviceType.CUDA, is_async=False, is_user_annotation=annotation,
                               time_range=SimpleNamespace(elapsed_us=lambda: us))

    it = cpu("spyolo::iteration")
    loss = cpu("spyolo::loss", it)
    events = [
        it, loss,
        cpu("aten::cudnn_convolution", it, [("sm90_xmma_fprop", 600.0)]),
        cpu("aten::cudnn_convolution", it, [("sm90_xmma_fprop", 200.0)]),
        cpu("aten::mul", loss, [("vectorized_elementwise_kernel", 100.0), ("spyolo::loss", 300.0)]),
        cpu("aten::copy_", it, [("Memcpy HtoD (Pageable -> Device)", 50.0)]),
        gpu("sm90_xmma_fprop", 600.0), gpu("sm90_xmma_fprop", 200.0), gpu("vectorized_elementwise_kernel", 100.0),
        gpu("Memcpy HtoD (Pageable -> Device)", 50.0), gpu("orphan_kernel", 50.0),
        gpu("spyolo::loss", 300.0, annotation=True), gpu("spyolo::iteration", 2000.0, annotation=True),
    ]
    out = summarize_events(events, on_device=True, iters=2, row_limit=3)
    assert out["total_ms"] == pytest.approx(1.0) and out["total_ms_per_iter"] == pytest.approx(0.5)
    assert out["unattributed_device_ms"] == pytest.approx(0.05) and out["cpu_total_ms"] == pytest.approx(0.03)
    cats = {c["category"]: c["ms"] for c in out["categories"]}
    assert cats == pytest.approx({"convolution": 0.8, "batch_norm": 0, "elementwise": 0, "optimizer": 0, "loss": 0.1,
                                  "memory": 0.05, "host": 0, "other": 0.05})
    top = out["top_ops"]
    assert [(r["name"], r["calls"]) for r in top] == [("aten::cudnn_convolution", 2), ("aten::mul", 1),
                                                        ("aten::copy_", 1)]
    assert top[0]["self_ms_per_iter"] == pytest.approx(0.4) and top[0]["percent"] == pytest.approx(80.0)
    assert [r["name"] for r in out["top_kernels"]] == ["sm90_xmma_fprop", "vectorized_elementwise_kernel",
                                                       "Memcpy HtoD (Pageable -> Device)"]
    assert out["top_kernels"][1]["category"] == "loss"


def test_benchmark_cli_profile_writes_reports(tmp_path):
    bench = _load_tool("benchmark")
    out = tmp_path / "prof"
    rc = bench.main(["--profile", "--device", "cpu", "--methods", "infer", "--timesteps", "2", "--batch", "2",
                     "--img-size", "64", "--width", "0.125", "--num-classes", "4", "--threads", "1",
                     "--profile-iters", "1", "--profile-rows", "5", "--trace", "--out", str(out), "--stem", "p"])
    assert rc == 0
    report = json.loads((out / "p_profile.json").read_text())
    assert report["command"].startswith("python -m benchmarks.benchmark --profile")
    assert report["machine"]["torch"] == torch.__version__
    [row] = report["profiles"]
    assert row["method"] == "infer" and row["timesteps"] == 2 and not row.get("error")
    assert 0 < len(row["top_ops"]) <= 5 and row["top_ops"][0]["self_ms"] > 0
    assert (out / "p_infer_T2_b2_64px.trace.json").is_file()
    md = (out / "p_profile.md").read_text()
    assert "# spyolo profile" in md and "## infer T=2, batch 2, 64 px, width 0.125" in md
    assert "| category | ms / iter | % |" in md and "| op | category | calls |" in md
    assert not (out / "p.json").exists()  # profile mode writes no timing report
    with pytest.raises(SystemExit):
        bench.main(["--trace", "--out", str(out)])  # --trace needs --profile


def test_gpu_check_profile_part():
    gpu_check = _load_tool("gpu_check")
    parts = gpu_check.build_parts("cuda", tiny=False)
    names = [p.name for p in parts]
    assert names.index("profile_fptt") == names.index("bench_infer") + 1
    part = parts[names.index("profile_fptt")]
    assert part.profile and not part.bench and part.limit_s <= 60
    argv = part.argv

    def value(flag, args=argv):
        return args[args.index(flag) + 1]

    assert "--profile" in argv and value("--methods") == "fptt" and value("--timesteps") == "8"
    assert (value("--batch"), value("--img-size"), value("--width")) == ("64", "416", "1.0")
    assert value("--amp") == "bf16" and value("--channels-last") == "on" and "--no-compile" in argv
    assert part.compile_after == ("bench_fptt" if gpu_check.PROFILE_COMPILED else None)
    compiled = gpu_check.part_argv(gpu_check.Part("p", 60, 30, argv, profile=True, compile_after="bench_fptt"),
                                   {"bench_fptt"})
    assert "--compile" in compiled and "--no-compile" not in compiled and value("--ltc-backend", compiled) == "auto"
    eager = gpu_check.part_argv(gpu_check.Part("p", 60, 30, argv, profile=True, compile_after="bench_fptt"), set())
    assert eager == argv


def test_gradient_scale_rows():
    """benchmarks/gradient_scale.py: one relative gradient per synaptic convolution (19 LTC layers
    and the same 19 Conv-BN layers in the twin), finite and positive, and the firing rate of the
    spiking recipes; the paper's threshold 1 fires less than the recipe's 0.5."""
    from benchmarks.gradient_scale import measure

    rows = {r: measure(r, width=0.25, img_size=64, timesteps=2, batch=2, num_classes=4, seed=0)
            for r in ("paper_neuron", "synthetic_recipe", "ann_twin")}
    for name, row in rows.items():
        layers = row["per_layer"]
        assert len(layers) == 19, (name, sorted(layers))
        assert all(math.isfinite(v) and v > 0 for v in layers.values())
        assert row["rel_grad_min"] <= row["rel_grad_median"] <= row["rel_grad_max"]
    assert set(rows["paper_neuron"]["per_layer"]) == set(rows["synthetic_recipe"]["per_layer"])
    assert rows["ann_twin"]["firing_rate"] is None and rows["ann_twin"]["timesteps"] == 1
    assert 0 < rows["paper_neuron"]["firing_rate"] < rows["synthetic_recipe"]["firing_rate"] < 1


def test_runner_logs_captures_and_kills_the_whole_group_at_the_timeout(tmp_path):
    from benchmarks.runner import run, start

    log = tmp_path / "a.log"
    done = run([sys.executable, "-c", "import os, sys; print(os.environ['OMP_NUM_THREADS']); sys.exit(3)"],
               log=log, threads=2)
    assert done.returncode == 3 and not done.ok and not done.timed_out and log.read_text() == "2\n"
    captured = run([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"], capture=True)
    assert captured.ok and captured.stdout == "out\n" and captured.stderr == "err\n"
    # a command whose child outlives it: at the timeout both go (the grandchild writes its pid, then sleeps)
    pid_file = tmp_path / "grandchild.pid"
    child = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', "
             f"\"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)\"]); "
             "time.sleep(60)")
    slow = run([sys.executable, "-c", child], timeout=6)
    assert slow.timed_out and slow.returncode is None and 6 <= slow.seconds < 40
    grandchild = int(pid_file.read_text())
    for _ in range(50):  # the kill is delivered; the grandchild (reparented) is reaped by init
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        if Path(f"/proc/{grandchild}/stat").is_file() and ") Z " in Path(f"/proc/{grandchild}/stat").read_text():
            break  # a zombie: killed, waiting for its reaper
        time.sleep(0.1)
    else:
        raise AssertionError(f"grandchild {grandchild} survived the timeout")
    job = start([sys.executable, "-c", "import time; time.sleep(60)"])
    assert job.poll() is None
    job.kill()
    assert job.poll() is not None
