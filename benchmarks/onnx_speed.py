"""CPU speed of an exported ONNX model under onnxruntime beside the same model in PyTorch.

    python -m benchmarks.onnx_speed                                    # 160 px, width 0.25, T=4, batch 1 and 8
    python -m benchmarks.onnx_speed --img-size 416 --width 1.0 --batch 1 --rounds 5

The model is an untrained SPYv4 (or ``--kind ann``) of the given size: the work per step does
not depend on the weights (every convolution is dense in both runtimes). It is saved as a
checkpoint and exported with ``spyolo.export.export_onnx``. One measurement is the network
alone for one batch: ``T`` steps from zero states (PyTorch: ``reset_states`` then ``T``
forward calls under ``torch.inference_mode``; onnxruntime: ``T`` ``session.run`` calls feeding
the states back). Image reading, resizing and post-processing are the same code for both and
are left out. Both runtimes use ``--threads`` threads (default 1, for a fair ratio) and run in
one process, interleaved round by round with the order alternating, so that load from other
processes affects both alike; the table gives the median over rounds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.machine import machine_info

__all__ = ["main", "measure"]


def _checkpoint(folder: Path, kind: str, img_size: int, width: float, timesteps: int, classes: int) -> Path:
    from spyolo.checkpoint import save_checkpoint
    from spyolo.config import Config, config_to_dict
    from spyolo.models import build_model

    cfg = Config()
    cfg.model.kind, cfg.model.width, cfg.model.timesteps, cfg.data.img_size = kind, width, timesteps, img_size
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes=classes)
    names = [f"class{i}" for i in range(classes)]
    return save_checkpoint({"model": model.state_dict(), "config": config_to_dict(cfg), "class_names": names},
                           folder / "model.pt")


def measure(kind: str, img_size: int, width: float, timesteps: int, batches: list[int], threads: int,
            rounds: int, warmup: int, classes: int = 20) -> list[dict]:
    """One row per batch size: median seconds per batch of ``T`` steps in each runtime."""
    from spyolo.checkpoint import load_model
    from spyolo.export import OnnxDetector, export_onnx
    from spyolo.snn import reset_states

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = _checkpoint(Path(tmp), kind, img_size, width, timesteps, classes)
        onnx_path = export_onnx(ckpt, Path(tmp) / "model.onnx")
        det = OnnxDetector(onnx_path, threads=threads)
        model = load_model(ckpt).model.eval()
        steps = timesteps if det.spiking else 1
        rows = []
        for batch in batches:
            images = torch.rand(batch, 3, img_size, img_size)
            array = images.numpy()

            def run_torch(images: torch.Tensor = images) -> None:
                with torch.inference_mode():
                    reset_states(model)
                    for _ in range(steps):
                        model(images)

            def run_onnx(batch: int = batch, array: np.ndarray = array) -> None:
                states = det.zero_states(batch)
                for _ in range(steps):
                    _heads, states = det.step(array, states)

            for _ in range(warmup):
                run_torch()
                run_onnx()
            times: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
            for r in range(rounds):
                order = [("torch", run_torch), ("onnxruntime", run_onnx)]
                for name, fn in order if r % 2 == 0 else order[::-1]:
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)
            row = {"batch": batch}
            for name, values in times.items():
                median = statistics.median(values)
                row[name] = {"seconds": median, "images_per_s": batch / median, "rounds": values}
            row["speedup"] = row["torch"]["seconds"] / row["onnxruntime"]["seconds"]
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.onnx_speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", choices=("spyv4", "ann"), default="spyv4")
    p.add_argument("--img-size", type=int, default=160)
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--timesteps", type=int, default=4)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    p.add_argument("--threads", type=int, default=1, help="threads of each runtime (default 1)")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--json", type=Path, default=None, help="also write the rows and the machine here")
    args = p.parse_args(argv)
    import onnxruntime

    rows = measure(args.kind, args.img_size, args.width, args.timesteps, args.batch, args.threads, args.rounds,
                   args.warmup)
    info = machine_info()
    info["onnxruntime"] = onnxruntime.__version__
    steps = args.timesteps if args.kind == "spyv4" else 1
    print(f"{args.kind}, {args.img_size} px, width {args.width}, T={steps}, {args.threads} thread(s), "
          f"median of {args.rounds} rounds; {info['cpu_model']} ({info['cpu_cores']} cores usable), "
          f"torch {info['torch']}, onnxruntime {info['onnxruntime']}")
    print("| batch | PyTorch ms / batch | PyTorch images/s "
          "| onnxruntime ms / batch | onnxruntime images/s | speed-up |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        t, o = row["torch"], row["onnxruntime"]
        print(f"| {row['batch']} | {t['seconds'] * 1e3:.1f} | {t['images_per_s']:.1f} | {o['seconds'] * 1e3:.1f} | "
              f"{o['images_per_s']:.1f} | {row['speedup']:.2f}x |")
    if args.json is not None:
        from spyolo.utils.io import atomic_write_json

        shown_args = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        atomic_write_json(args.json, {"args": shown_args, "machine": info, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
