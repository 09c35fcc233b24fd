"""Run a trained detector on images, a folder, a video file or a camera; write annotated results.

    spyolo demo --weights runs/synthetic/weights/best.pt --source photo.jpg --out runs/demo
    spyolo demo --weights W --source images/ --out runs/demo --conf 0.3
    spyolo demo --weights W --source clip.mp4 --out runs/demo              # T steps per frame
    spyolo demo --weights W --source clip.mp4 --out runs/demo --stream --k 1 --warmup 8
    spyolo demo --weights W --source 0 --out runs/cam --stream --max-frames 300   # camera 0
    spyolo demo --weights model.onnx --source photo.jpg --out runs/demo    # ONNX model, onnxruntime
    spyolo demo --weights runs/ev/weights/best.pt --source recording_td.dat --out runs/ev_demo   # events
    spyolo demo --weights W --source yolo:pets/data.yaml:val --out runs/demo --max-images 20   # a dataset split

(``python tools/demo.py ...`` is the same program.)

Images: for each input ``NAME.EXT`` the annotated image ``OUT/NAME.EXT`` (PNG when OpenCV
cannot write that format) and ``OUT/NAME.json`` with the detections (boxes ``x1, y1, x2, y2`` in
continuous pixel coordinates of the original image; see spyolo/inference/prediction.py), written
together. Inputs sharing a name get distinct ones (``a.jpg`` and ``a.png`` give ``a_jpg.*`` and
``a_png.*``; a name already taken gets ``_2``, ...): never one output for two inputs.
A folder is processed whole: an unreadable image is reported and skipped, and the exit status
is 2 at the end if any was.

A dataset's set entry (any kind of ``data.test_sets``: ``VOC2007:test``, ``coco:FILE.json:IMAGES``,
``yolo:DATA_FILE:SPLIT``, ``gen1:FOLDER``; relative to ``--root``, default the checkpoint's
``data.root``) runs like a folder of its images, or over each of its event recordings.

Videos and cameras: ``OUT/NAME.mp4`` (or ``.avi`` where mp4v is unavailable) and
``OUT/NAME.jsonl``, one JSON record per frame. Without ``--stream`` every frame is an
independent image run for T timesteps; with ``--stream`` the neuron state is kept across
frames and each frame runs ``--k`` timesteps after a warm-up of ``--warmup`` timesteps on the
first frame (the online mode of spiking hardware). The achieved frames per second are printed.

Event recordings (a Gen1 ``.dat`` or a Prophesee EVT 2.0 / 3.0 ``.raw``, for a model trained with
``model.input=events``): the detector runs online over the stream with its neuron state kept from
start to end, one bin (the training window / T) per timestep, ``--bins-per-step`` merged into one
step; ``OUT/NAME.mp4`` shows the event frames with the latest detections and ``OUT/NAME.jsonl``
holds one record per prediction: every ``--every-ms`` (default: the training window) and at the
labelled time stamps of a Gen1 recording (``NAME_bbox.npy`` beside it). See
spyolo/inference/events.py.

Files are never overwritten silently: an output that would replace an input is refused, and
one that would replace an existing file needs ``--exist-ok``. Every output is written
atomically. Exit status: 0 on success, 2 on bad input (the message names the file and the problem).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from spyolo.cli.common import command_parser, parse_command_line, run_command
from spyolo.data.images import IMAGE_EXTENSIONS
from spyolo.errors import ConfigError, ImageReadError, SpyoloError

__all__ = [
    "add_arguments", "build_parser", "classify_source", "list_images", "load_detector", "main", "output_names", "run",
]


class OutputConflict(SpyoloError, ValueError):
    """An output file would replace an input or an existing file."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True,
                   help="checkpoint written by spyolo train (weights/best.pt), a .onnx from spyolo export, or named "
                        "pretrained weights (spyolo weights lists them: sfptt-voc, yolov4-tiny-coco, ...)")
    p.add_argument("--source", required=True,
                   help="an image file, a folder of images, a video file, an event recording, a camera index (0, 1, "
                        "...), or a dataset's set entry (VOC2007:test, yolo:DATA_FILE:SPLIT, ...)")
    p.add_argument("--root", default=None,
                   help="folder a set entry's relative paths start from (default: the checkpoint's data.root)")
    p.add_argument("--max-images", type=int, default=0,
                   help="a folder or set entry: annotate its first N images (0: all)")
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
    p.add_argument("--max-frames", type=int, default=0, help="video/camera: stop after N frames (0: all); "
                   "event recordings: after N timesteps")
    p.add_argument("--bins-per-step", type=int, default=1,
                   help="event recordings: training bins merged into one timestep's input (default 1)")
    p.add_argument("--every-ms", type=float, default=None,
                   help="event recordings: milliseconds between predictions (default: the training window)")
    p.add_argument("--event-resize", choices=("pad", "scale"), default=None,
                   help="event recordings: sensor to input mapping (default: the checkpoint's data.event_resize)")
    p.add_argument("--evt3-time-rule", choices=("prophesee", "expelliarmus"), default="prophesee",
                   help="EVT 3.0 recordings: the time rule (spyolo/events/raw.py)")
    p.add_argument("--exist-ok", action="store_true", help="replace outputs of an earlier demo run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    return command_parser("demo", __doc__, add_arguments)


def classify_source(source: str) -> tuple[str, object]:
    """``("camera", index)``, ``("folder", path)``, ``("events", path)``, ``("video", path)``, ``("image", path)``
    or ``("set", entry)`` (not a path, but a set entry such as ``VOC2007:test``).

    Raises:
        FileNotFoundError: if ``source`` is neither an existing path, a camera index nor a set entry.
    """
    path = Path(source)
    if not path.exists() and source.strip().isdigit():
        return "camera", int(source)
    if not path.exists() and not path.is_symlink() and ":" in source:
        return "set", source.strip()
    if path.is_dir():
        return "folder", path
    if path.is_symlink() and not path.exists():
        raise FileNotFoundError(2, "a symbolic link to nothing (its target is missing, or links loop)", str(path))
    if not path.is_file():
        raise FileNotFoundError(2, "no such file or folder (and not a camera index)", str(path))
    from spyolo.events.recording import EVENT_FILE_SUFFIXES
    from spyolo.inference.video import VIDEO_EXTENSIONS

    if path.suffix.lower() in EVENT_FILE_SUFFIXES:
        return "events", path

    return ("video" if path.suffix.lower() in VIDEO_EXTENSIONS else "image"), path


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (by suffix), sorted by name."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise FileNotFoundError(2, f"no image files (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})", str(folder))
    return files


def output_names(files: Sequence[Path]) -> list[tuple[str, str]]:
    """``(annotated image name, JSON name)`` per input, all different (ignoring case) by construction.

    An input whose stem no other input shares keeps it (``photo.jpg`` -> ``photo.jpg``,
    ``photo.json``); inputs sharing a stem get their suffix in the name (``a.jpg`` -> ``a_jpg``),
    and a name taken already (by another input's stem, or by an earlier input) gets ``_2``,
    ``_3``, ... The annotated image keeps the input's format when OpenCV can write it, else PNG.
    """
    import cv2

    stems: dict[str, int] = {}
    for f in files:
        stems[f.stem.casefold()] = stems.get(f.stem.casefold(), 0) + 1
    bases: dict[Path, str] = {f: f.stem for f in files if stems[f.stem.casefold()] == 1}
    taken = {base.casefold() for base in bases.values()}
    for f in files:
        if f in bases:
            continue
        wanted = f"{f.stem}_{f.suffix.lstrip('.').lower()}"
        base, n = wanted, 2
        while base.casefold() in taken:
            base, n = f"{wanted}_{n}", n + 1
        taken.add(base.casefold())
        bases[f] = base
    names = []
    for f in files:
        suffix = f.suffix.lower() if cv2.haveImageWriter(f"x{f.suffix.lower()}") else ".png"
        names.append((bases[f] + suffix, bases[f] + ".json"))
    return names


def check_outputs(outputs: Sequence[Path], inputs: Sequence[Path], exist_ok: bool) -> None:
    """Refuse outputs that would replace an input (always) or an existing file (without ``exist_ok``)."""
    resolved_inputs = {p.resolve() for p in inputs}
    for out in outputs:
        if out.resolve() in resolved_inputs:
            raise OutputConflict(f"{out}: the output would replace this input file; choose another --out")
    if not exist_ok:
        existing = [p for p in outputs if p.exists()]
        if existing:
            more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
            raise OutputConflict(
                f"{existing[0]}{more}: already exist; choose another --out, or pass --exist-ok to replace "
                f"an earlier demo run's outputs (nothing was written)"
            )


def run_images(det, files: list[Path], out: Path, batch_size: int, progress: bool,
               skip_bad: bool = True) -> tuple[int, int, list[str]]:
    """Annotate ``files`` into ``out``; return (images written, detections, problems of skipped files).
    ``skip_bad=False`` (one image given as the source): an unreadable image raises its own error."""
    import cv2
    from tqdm import tqdm

    from spyolo.data.images import read_image_file
    from spyolo.inference.draw import class_colors, draw_predictions
    from spyolo.utils.io import atomic_write_files, encode_image

    colours = class_colors(det.num_classes)
    names = dict(zip(files, output_names(files)))
    total = written = 0
    problems: list[str] = []
    with tqdm(total=len(files), desc="images", unit="img", disable=not progress, dynamic_ncols=True) as bar:
        for start in range(0, len(files), batch_size):
            chunk, images = [], []
            for f in files[start : start + batch_size]:
                try:
                    images.append(read_image_file(f))
                    chunk.append(f)
                except ImageReadError as exc:
                    if not skip_bad:
                        raise
                    problems.append(str(exc))
                    print(f"skipped: {exc}", file=sys.stderr)
                    bar.update(1)
            if not chunk:
                continue
            preds = det.predict(images, rgb=True)
            for f, image, pred in zip(chunk, images, preds):
                img_name, json_name = names[f]
                pred = dataclasses.replace(pred, source=str(f))
                annotated = draw_predictions(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), pred, colours)
                atomic_write_files([(out / img_name, encode_image(img_name, annotated)),
                                    (out / json_name, (pred.to_json(indent=2) + "\n").encode("utf-8"))])
                total += len(pred)
                written += 1
                bar.update(1)
    return written, total, problems


def _is_onnx(weights: str) -> bool:
    return str(weights).lower().endswith(".onnx")


def load_detector(args: argparse.Namespace):
    """The PyTorch ``Detector`` of a checkpoint, or the onnxruntime ``OnnxDetector`` of a ``.onnx`` file."""
    settings = dict(timesteps=args.timesteps, conf=args.conf, nms=args.nms, max_det=args.max_det,
                    batch_size=args.batch_size)
    if _is_onnx(args.weights):
        if args.device not in (None, "auto", "cpu"):
            raise ConfigError(f"--device {args.device}: an ONNX model runs on onnxruntime's CPU provider; "
                              f"use --device cpu")
        from spyolo.export import OnnxDetector

        return OnnxDetector(args.weights, **settings)
    from spyolo.inference.detector import Detector

    return Detector.from_checkpoint(args.weights, device=args.device, **settings)


def set_files(entry: str, root: str | None, det) -> tuple[str, list[Path]]:
    """``("folder", images)`` or ``("recordings", event files)`` of a set entry (relative to ``root``, else to
    the detector's checkpoint's ``data.root``, else to the current folder)."""
    from spyolo.datasets.kinds import entry_files

    cfg = getattr(det, "config", None)
    base = root if root is not None else (cfg.data.root if cfg is not None else ".")
    input_kind, files = entry_files(entry, base)
    return ("recordings" if input_kind == "events" else "folder"), files


def run(args: argparse.Namespace) -> int:
    from spyolo.inference.video import video_outputs

    if args.batch_size < 1 or args.k < 1 or args.warmup < 0 or args.max_frames < 0 or args.bins_per_step < 1:
        raise ConfigError("need --batch-size >= 1, --k >= 1, --warmup >= 0, --max-frames >= 0 and --bins-per-step >= 1")
    if args.max_images < 0:
        raise ConfigError("--max-images must be >= 0 (0: all)")
    kind, source = classify_source(args.source)
    out = Path(args.out)
    if kind == "folder" and out.resolve() == Path(source).resolve():
        raise OutputConflict(f"--out {out} is the source folder; choose another folder so no input is overwritten")
    if out.exists() and not out.is_dir():
        raise OutputConflict(f"{out}: --out must be a folder, and a file of that name exists")
    files: list[Path] = []
    stem = out
    det = None
    if kind == "set":
        det = load_detector(args)
        kind, files = set_files(str(source), args.root, det)
    if kind in ("image", "folder"):
        files = [source] if kind == "image" else (files or list_images(source))
        files = files[: args.max_images] if args.max_images else files
        outputs = [out / name for pair in output_names(files) for name in pair]
        check_outputs(outputs, files, args.exist_ok)
    elif kind == "recordings":
        check_outputs([o for f in files for o in video_outputs(out / f.stem)], files, args.exist_ok)
    else:
        stem = out / (f"camera{source}" if kind == "camera" else Path(source).stem)
        inputs = [] if kind == "camera" else [source]
        check_outputs(video_outputs(stem), inputs, args.exist_ok)
    det = det if det is not None else load_detector(args)
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    code = 2
    try:
        code = _annotate(args, det, kind, source, out, files, stem)
    finally:
        if code and made and not any(out.iterdir()):
            out.rmdir()  # a run that wrote nothing leaves no empty output folder behind
    return code


def _annotate(args: argparse.Namespace, det, kind: str, source, out: Path, files: list[Path], stem: Path) -> int:
    from spyolo.inference.video import run_video

    runtime = "onnxruntime (CPU)" if _is_onnx(args.weights) else f"device {det.device}"
    print(
        f"model: {'SPYv4' if det.spiking else 'ANN'} {det.num_classes} classes, input {det.img_size}px, "
        f"T={det.steps_per_image}, conf {det.conf:g}, NMS {det.nms:g}, {runtime}"
    )
    if kind == "events":
        return run_events(det, source, stem, args)
    if kind == "recordings":
        for recording in files:
            run_events(det, recording, out / recording.stem, args)
        return 0
    if kind in ("image", "folder"):
        written, n_det, problems = run_images(det, files, out, args.batch_size, not args.no_progress,
                                              skip_bad=kind == "folder")
        print(f"wrote {written} annotated images and {written} JSON files ({n_det} detections) to {out}")
        if problems:
            print(f"error: {len(problems)} of {len(files)} images could not be read (listed above as skipped)",
                  file=sys.stderr)
            return 2
        return 0
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


def run_events(det, source: Path, stem: Path, args: argparse.Namespace) -> int:
    """The online run over an event recording (spyolo/inference/events.py)."""
    from spyolo.datasets.kinds import reads_events
    from spyolo.events.arrays import SensorSize
    from spyolo.inference.events import run_event_stream

    cfg = getattr(det, "config", None)
    if cfg is None or not reads_events(cfg):
        raise ConfigError(f"{source}: an event recording needs a checkpoint trained on event data (model.input=events)")
    d = cfg.data
    res = run_event_stream(
        det, source, stem, window_us=int(round(d.event_window_ms * 1000)), representation=d.event_representation,
        resize=args.event_resize or d.event_resize, sensor=SensorSize(*d.event_sensor) if d.event_sensor else None,
        bins_per_step=args.bins_per_step, every_us=int(round(args.every_ms * 1000)) if args.every_ms else None,
        max_steps=args.max_frames, time_rule=args.evt3_time_rule, progress=not args.no_progress)
    print(f"{res.steps} timesteps of {res.step_us} us ({res.steps * res.step_us / 1e6:.3f} s of recording), "
          f"state kept throughout; {res.predictions} predictions")
    print(f"detector: {res.realtime_factor:.2f}x real time ({res.model_seconds:.2f} s); whole loop {res.seconds:.2f} s")
    print(f"wrote {res.video_path} and {res.jsonl_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(run, parse_command_line(build_parser(), argv))


if __name__ == "__main__":
    sys.exit(main())
