#!/usr/bin/env python3
"""Run a trained detector on images, a folder, a video file or a camera; write annotated results.

    python tools/demo.py --weights runs/synthetic/weights/best.pt --source photo.jpg --out runs/demo
    python tools/demo.py --weights W --source images/ --out runs/demo --conf 0.3
    python tools/demo.py --weights W --source clip.mp4 --out runs/demo              # T steps per frame
    python tools/demo.py --weights W --source clip.mp4 --out runs/demo --stream --k 1 --warmup 8
    python tools/demo.py --weights W --source 0 --out runs/cam --stream --max-frames 300   # camera 0

Images: for each input ``NAME.EXT`` the annotated image ``OUT/NAME.EXT`` (PNG when OpenCV
cannot write that format) and ``OUT/NAME.json`` with the detections (boxes ``x1, y1, x2,
y2`` in continuous pixel coordinates of the original image; see spyolo/inference/detector.py).

Videos and cameras: ``OUT/NAME.mp4`` (or ``.avi`` where mp4v is unavailable) and
``OUT/NAME.jsonl``, one JSON record per frame. Without ``--stream`` every frame is an
independent image run for T timesteps; with ``--stream`` the neuron state is kept across
frames and each frame runs ``--k`` timesteps after a warm-up of ``--warmup`` timesteps on the
first frame (the online mode of spiking hardware). The achieved frames per second are printed.

Exit status: 0 on success, 2 on bad input (the message names the file and the problem).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

import _bootstrap  # noqa: F401  (repo root on sys.path)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="checkpoint written by tools/train.py (weights/best.pt)")
    p.add_argument("--source", required=True,
                   help="an image file, a folder of images, a video file, or a camera index (0, 1, ...)")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--conf", type=float, default=None,
                   help="confidence threshold (default: the checkpoint's eval.demo_conf, 0.25)")
    p.add_argument("--nms", type=float, default=None,
                   help="NMS IoU threshold (default: the checkpoint's eval.demo_nms, 0.45)")
    p.add_argument("--max-det", type=int, default=None, help="cap on boxes per image (default eval.max_det)")
    p.add_argument("--timesteps", type=int, default=None,
                   help="timesteps T per image (default: the checkpoint's model.timesteps)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when available)")
    p.add_argument("--batch-size", type=int, default=8, help="images per forward pass (image sources)")
    p.add_argument("--stream", action="store_true",
                   help="video/camera: keep the neuron state across frames (online mode)")
    p.add_argument("--k", type=int, default=1, help="--stream: timesteps per frame (default 1)")
    p.add_argument("--warmup", type=int, default=8, help="--stream: timesteps on the first frame (default 8)")
    p.add_argument("--max-frames", type=int, default=0, help="video/camera: stop after N frames (0: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def classify_source(source: str) -> tuple[str, object]:
    """``("camera", index)``, ``("folder", path)``, ``("video", path)`` or ``("image", path)``.

    Raises:
        FileNotFoundError: if ``source`` is neither an existing path nor a camera index.
    """
    path = Path(source)
    if not path.exists() and source.strip().isdigit():
        return "camera", int(source)
    if path.is_dir():
        return "folder", path
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file or folder (and not a camera index)")
    from spyolo.inference.video import VIDEO_EXTENSIONS

    return ("video" if path.suffix.lower() in VIDEO_EXTENSIONS else "image"), path


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (by suffix), sorted by name."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise FileNotFoundError(
            f"{folder}: no image files (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    return files


def output_names(files: Sequence[Path]) -> list[tuple[str, str]]:
    """``(annotated image name, JSON name)`` per input; inputs sharing a stem get the suffix in the name."""
    import cv2

    stems: dict[str, int] = {}
    for f in files:
        stems[f.stem] = stems.get(f.stem, 0) + 1
    names = []
    for f in files:
        base = f.stem if stems[f.stem] == 1 else f"{f.stem}_{f.suffix.lstrip('.').lower()}"
        suffix = f.suffix.lower() if cv2.haveImageWriter(f"x{f.suffix.lower()}") else ".png"
        names.append((base + suffix, base + ".json"))
    return names


def run_images(det, files: list[Path], out: Path, batch_size: int, progress: bool) -> int:
    """Annotate ``files`` into ``out``; return the number of detections written."""
    import cv2
    from tqdm import tqdm

    from spyolo.inference.detector import read_image
    from spyolo.inference.draw import class_colors, draw_predictions

    colours = class_colors(det.num_classes)
    names = output_names(files)
    total = 0
    with tqdm(total=len(files), desc="images", unit="img", disable=not progress, dynamic_ncols=True) as bar:
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            images = [read_image(f) for f in chunk]
            preds = det.predict(images, rgb=True)
            for f, image, pred, (img_name, json_name) in zip(chunk, images, preds, names[start : start + batch_size]):
                pred = dataclasses.replace(pred, source=str(f))
                annotated = draw_predictions(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), pred, colours)
                target = out / img_name
                if not cv2.imwrite(str(target), annotated):
                    raise OSError(f"{target}: OpenCV could not write the annotated image")
                (out / json_name).write_text(pred.to_json(indent=2) + "\n", encoding="utf-8")
                total += len(pred)
                bar.update(1)
    return total


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from spyolo.config import ConfigError
    from spyolo.inference.detector import Detector, ImageReadError
    from spyolo.inference.video import VideoError, run_video
    from spyolo.train.checkpoint import CheckpointError

    try:
        if args.batch_size < 1 or args.k < 1 or args.warmup < 0 or args.max_frames < 0:
            raise ValueError("need --batch-size >= 1, --k >= 1, --warmup >= 0 and --max-frames >= 0")
        kind, source = classify_source(args.source)
        out = Path(args.out)
        if kind == "folder" and out.resolve() == Path(source).resolve():
            raise ValueError(f"--out {out} is the source folder; choose another folder so no input is overwritten")
        det = Detector.from_checkpoint(
            args.weights, device=args.device, timesteps=args.timesteps, conf=args.conf, nms=args.nms,
            max_det=args.max_det, batch_size=args.batch_size,
        )
        out.mkdir(parents=True, exist_ok=True)
        print(
            f"model: {'SPYv4' if det.spiking else 'ANN'} {det.num_classes} classes, input {det.img_size}px, "
            f"T={det.steps_per_image}, conf {det.conf:g}, NMS {det.nms:g}, device {det.device}"
        )
        if kind in ("image", "folder"):
            files = [source] if kind == "image" else list_images(source)
            n_det = run_images(det, files, out, args.batch_size, not args.no_progress)
            print(f"wrote {len(files)} annotated images and {len(files)} JSON files ({n_det} detections) to {out}")
            return 0
        stem = out / (f"camera{source}" if kind == "camera" else Path(source).stem)
        res = run_video(
            det, source, stem, stream=args.stream, steps_per_frame=args.k, warmup=args.warmup,
            max_frames=args.max_frames, progress=not args.no_progress,
        )
        if not det.spiking:
            mode = "one forward pass per frame (ANN model: no neuron state)"
        elif args.stream:
            mode = f"stream (state kept; warm-up {max(args.warmup, args.k)} steps, then {args.k} per frame)"
        else:
            mode = f"per frame ({det.steps_per_image} steps from a fresh state)"
        print(f"{res.frames} frames, {res.timesteps} timesteps, mode: {mode}")
        print(f"achieved {res.fps:.2f} fps end-to-end, {res.model_fps:.2f} fps in the detector")
        print(f"wrote {res.video_path} and {res.jsonl_path}")
        return 0
    except (ConfigError, CheckpointError, ImageReadError, VideoError, FileNotFoundError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
