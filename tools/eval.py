#!/usr/bin/env python
"""Evaluate object detections with the exact PASCAL VOC protocol.

Text mode: ground truth and detections as one text file per image::

    python tools/eval.py --gt-dir GT_DIR --det-dir DET_DIR \
        [--classes FILE] [--iou 0.5] [--json PATH] [--plots DIR] [--coco]

GT lines are ``class x1 y1 x2 y2 [difficult]``, detection lines are
``class score x1 y1 x2 y2`` (VOC pixels, 1-based inclusive).

Checkpoint mode: run a trained model on the test split of its config::

    python tools/eval.py --weights runs/synthetic/weights/best.pt [section.key=value ...] \
        [--split test] [--spikes] [--per-timestep] [--out DIR] [--json PATH] [--plots DIR] [--coco]

``section.key=value`` overrides change the checkpoint's config (e.g. ``data.root=/data/VOCdevkit``);
``--split val`` evaluates the ``val`` split of the same year folders. ``--spikes`` adds the
per-layer spike table (neurons, firing rate, ACs, MACs, energy beside the ANN twin) and
writes ``spike_stats.json`` / ``spike_stats.csv``; ``--per-timestep`` reads the mAP at every
timestep t = 1..T in the same pass (anytime accuracy) and writes ``map_per_timestep.json``
and ``map_per_timestep.png``. Those files go to ``--out`` (default: ``eval/`` next to the
run's ``weights/`` folder). See docs/spike_stats.md for how operations are counted.

Both modes print the per-class table with VOC2007 11-point and area (VOC2010+) AP. Exit
status 0 on success, 2 on bad input (the message names the file and the problem).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from spyolo.eval.report import format_ap_table, write_json  # noqa: E402
from spyolo.eval.textfiles import (  # noqa: E402
    evaluator_from_text,
    load_text_results,
    read_class_file,
)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (shared by all evaluation modes)."""
    parser = argparse.ArgumentParser(
        description="Exact PASCAL VOC evaluation (VOC2007 11-point and area/VOC2010+ mAP).",
    )
    text = parser.add_argument_group("text mode (one .txt file per image)")
    text.add_argument("--gt-dir", type=Path, help="folder of <image_id>.txt ground-truth files "
                      "with lines 'class x1 y1 x2 y2 [difficult]'")
    text.add_argument("--det-dir", type=Path, help="folder of <image_id>.txt detection files "
                      "with lines 'class score x1 y1 x2 y2'")
    text.add_argument("--classes", type=Path, default=None,
                      help="class list file, one name per line (default: sorted GT class names)")
    ck = parser.add_argument_group("checkpoint mode (run a trained model on a dataset split)")
    ck.add_argument("--weights", type=Path, help="checkpoint written by tools/train.py (weights/best.pt)")
    ck.add_argument("overrides", nargs="*", metavar="section.key=value",
                    help="overrides of the checkpoint's config, e.g. data.root=/data/VOCdevkit")
    ck.add_argument("--split", default=None,
                    help="split name replacing the one in each data.test_sets entry (e.g. val; default: as configured)")
    ck.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    ck.add_argument("--amp", choices=("off", "bf16"), default="off", help="autocast dtype (default off: float32)")
    ck.add_argument("--batch-size", type=int, default=None, help="images per batch (default eval.batch_size)")
    ck.add_argument("--workers", type=int, default=None, help="data loader workers (default data.workers)")
    ck.add_argument("--timesteps", type=int, default=None, help="timesteps T (default model.timesteps)")
    ck.add_argument("--conf", type=float, default=None, help="confidence threshold (default eval.conf_thresh, 0.001)")
    ck.add_argument("--nms", type=float, default=None, help="NMS IoU threshold (default eval.nms_iou, 0.5)")
    ck.add_argument("--max-images", type=int, default=None, help="evaluate only the first N images (0: all)")
    ck.add_argument("--spikes", action="store_true",
                    help="per-layer firing rates, synaptic operations and energy (spiking models)")
    ck.add_argument("--per-timestep", action="store_true", help="mAP at every timestep t = 1..T in one pass")
    ck.add_argument("--recalibrate-bn", type=int, default=0, metavar="N",
                    help="diagnostic: re-estimate the BatchNorm statistics with the final weights over N batches "
                         "of the training split (training augmentation, train.batch_size, seed train.seed) "
                         "before evaluating (docs/learning_quality.md)")
    ck.add_argument("--bn-per-timestep", action="store_true",
                    help="with --recalibrate-bn: one set of BN statistics per timestep, loaded before that step")
    ck.add_argument("--out", type=Path, default=None,
                    help="folder for the --spikes / --per-timestep files (default: <run>/eval)")
    ck.add_argument("--no-progress", action="store_true", help="no progress bar")
    out = parser.add_argument_group("options and outputs")
    out.add_argument("--iou", type=float, default=0.5,
                     help="IoU threshold, inclusive, '+1 pixel' convention (default 0.5)")
    out.add_argument("--json", type=Path, default=None,
                     help="write map_voc07, map_area, ap_voc07, ap_area (fractions) to this file")
    out.add_argument("--plots", type=Path, default=None,
                     help="write precision-recall PNGs (one per class + a summary) to this folder")
    out.add_argument("--coco", action="store_true",
                     help="also compute COCO-style AP@[.5:.95] and AP@.5 with pycocotools")
    return parser


def run_text_mode(args: argparse.Namespace) -> int:
    """Evaluate text-file results; print the table; write optional outputs."""
    if not (0.0 < args.iou <= 1.0):
        raise ValueError(f"--iou must be in (0, 1]; got {args.iou}")
    class_names = read_class_file(args.classes) if args.classes is not None else None
    data = load_text_results(args.gt_dir, args.det_dir, class_names)
    for msg in data.warnings:
        print(f"warning: {msg}", file=sys.stderr)
    ev = evaluator_from_text(data, iou_threshold=args.iou)
    res = ev.compute()
    extra = {}
    if args.coco:
        res["coco"] = ev.compute_coco()
        extra["coco"] = res["coco"]
    print(format_ap_table(res))
    if args.json is not None:
        write_json(res, args.json, extra=extra or None)
        print(f"wrote {args.json}")
    if args.plots is not None:
        from spyolo.eval.plots import plot_pr_curves  # matplotlib only when asked

        paths = plot_pr_curves(res, args.plots)
        print(f"wrote {len(paths)} plots to {args.plots}")
    return 0


def _with_split(specs: list[str], split: str) -> list[str]:
    """``["VOC2007:test"]`` with split ``val`` -> ``["VOC2007:val"]``."""
    out = []
    for spec in specs:
        if ":" not in spec:
            raise ValueError(f"data.test_sets entry {spec!r} is not of the form YEAR_FOLDER:split")
        out.append(spec.rsplit(":", 1)[0] + ":" + split)
    return out


def _default_out(weights: Path) -> Path:
    parent = weights.resolve().parent
    return (parent.parent if parent.name == "weights" else parent) / "eval"


def _recalibrated(model, cfg, n_batches: int, per_timestep: bool, device):
    """``model`` wrapped to run with BN statistics re-estimated over ``n_batches`` training batches."""
    from itertools import islice

    from spyolo.data import build_dataloader, build_dataset
    from spyolo.eval.bn_recalibration import TimestepBNStats, estimate_bn_stats

    train_set = build_dataset(cfg.data, train=True)
    loader = build_dataloader(train_set, cfg.train.batch_size, shuffle=True, workers=cfg.data.workers,
                              seed=cfg.train.seed)
    images = (batch[0] for batch in islice(loader, n_batches))
    sets = estimate_bn_stats(model, images, cfg.model.timesteps, per_timestep, device)
    kind = f"{len(sets)} set(s), one per timestep" if per_timestep else "one set shared by all timesteps"
    print(f"BN statistics re-estimated over {min(n_batches, len(loader))} training batches of "
          f"{cfg.train.batch_size}: {kind}")
    return TimestepBNStats(model, sets)


def run_checkpoint_mode(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint on a dataset split; print the tables; write the optional files."""
    from spyolo.config import apply_overrides, config_from_dict
    from spyolo.data import build_dataloader, build_dataset
    from spyolo.inference.evaluate import EvalSettings, evaluate_model
    from spyolo.inference.postprocess import head_spec_for
    from spyolo.models import build_model
    from spyolo.train.checkpoint import CheckpointError, load_checkpoint
    from spyolo.utils.runtime import resolve_runtime

    if not (0.0 < args.iou <= 1.0):
        raise ValueError(f"--iou must be in (0, 1]; got {args.iou}")
    ckpt = load_checkpoint(args.weights, map_location="cpu")
    cfg = apply_overrides(config_from_dict(ckpt["config"], str(args.weights)), args.overrides)
    if args.split:
        cfg.data.test_sets = _with_split(cfg.data.test_sets, args.split)
    if args.timesteps is not None:
        cfg.model.timesteps = args.timesteps
    if args.conf is not None:
        cfg.eval.conf_thresh = args.conf
    if args.nms is not None:
        cfg.eval.nms_iou = args.nms
    if args.batch_size is not None:
        cfg.eval.batch_size = args.batch_size
    if args.workers is not None:
        cfg.data.workers = args.workers
    if args.max_images is not None:
        cfg.eval.max_images = args.max_images
    apply_overrides(cfg, [])  # re-validate after the option overrides
    if cfg.eval.batch_size < 1 or cfg.data.workers < 0 or cfg.eval.max_images < 0:
        raise ValueError("need --batch-size >= 1, --workers >= 0 and --max-images >= 0")
    if not (0.0 <= cfg.eval.conf_thresh <= 1.0) or not (0.0 < cfg.eval.nms_iou <= 1.0):
        raise ValueError("need 0 <= --conf <= 1 and 0 < --nms <= 1")

    names = list(ckpt.get("class_names") or [])
    dataset = build_dataset(cfg.data, train=False)
    if names and list(dataset.class_names) != names:
        raise ValueError(
            f"{args.weights}: the model's classes {names} differ from the dataset's {list(dataset.class_names)}"
        )
    model = build_model(cfg.model, num_classes=len(dataset.class_names))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{args.weights}: weights do not match the model of its config ({exc})") from exc
    runtime = resolve_runtime(args.device, "bf16" if args.amp == "bf16" else "off", "off")
    model = model.to(runtime.device).eval()
    spiking = bool(getattr(model, "is_spiking", False))
    if args.spikes and not spiking:
        raise ValueError(f"--spikes needs a spiking model; {args.weights} holds model.kind={cfg.model.kind}")
    steps = cfg.model.timesteps if spiking else 1
    if args.recalibrate_bn < 0:
        raise ValueError(f"--recalibrate-bn must be >= 0, got {args.recalibrate_bn}")
    if args.bn_per_timestep and not args.recalibrate_bn:
        raise ValueError("--bn-per-timestep needs --recalibrate-bn N")
    run_model = model
    if args.recalibrate_bn:
        run_model = _recalibrated(model, cfg, args.recalibrate_bn, args.bn_per_timestep, runtime.device)
    loader = build_dataloader(dataset, cfg.eval.batch_size, shuffle=False, workers=cfg.data.workers)
    settings = EvalSettings(
        img_size=cfg.data.img_size, timesteps=cfg.model.timesteps, conf_thresh=cfg.eval.conf_thresh,
        nms_iou=cfg.eval.nms_iou, max_det=cfg.eval.max_det, iou_threshold=args.iou,
        state_init=cfg.model.state_init, state_seed=cfg.model.state_seed, max_images=cfg.eval.max_images,
    )
    print(
        f"model: {cfg.model.kind} width {cfg.model.width:g}, T={steps}, input {cfg.data.img_size}px "
        f"({cfg.data.eval_resize}); split {', '.join(cfg.data.test_sets)} under {cfg.data.root}; "
        f"conf {cfg.eval.conf_thresh:g}, NMS {cfg.eval.nms_iou:g}; device {runtime.device}"
    )
    monitor = counter = None
    if args.spikes:
        from spyolo.stats import FiringRateMonitor, SynOpCounter

        monitor, counter = FiringRateMonitor(model), SynOpCounter(model)
    try:
        res = evaluate_model(
            run_model, loader, dataset, head_spec_for(model, cfg.data.img_size, cfg.model.anchor_ref_size), settings,
            runtime.device, amp_dtype=runtime.amp_dtype, per_timestep=args.per_timestep, coco=args.coco,
            progress=not args.no_progress,
        )
    finally:
        for hooks in (monitor, counter):
            if hooks is not None:
                hooks.close()
    print(format_ap_table(res))
    print(f"images evaluated: {res['num_images']}")

    extra = {"coco": res["coco"]} if args.coco else {}
    if args.per_timestep:
        extra["per_timestep"] = res["per_timestep"]
    if args.json is not None:
        write_json(res, args.json, extra=extra or None)
        print(f"wrote {args.json}")
    if args.plots is not None:
        from spyolo.eval.plots import plot_pr_curves  # matplotlib only when asked

        paths = plot_pr_curves(res, args.plots)
        print(f"wrote {len(paths)} plots to {args.plots}")
    if not (args.spikes or args.per_timestep):
        return 0

    import json

    out_dir = args.out if args.out is not None else _default_out(args.weights)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.per_timestep:
        from spyolo.stats.report import format_per_timestep_table, plot_map_per_timestep

        print()
        print(format_per_timestep_table(res["per_timestep"]))
        js = out_dir / "map_per_timestep.json"
        js.write_text(json.dumps({"weights": str(args.weights), "timesteps": steps,
                                  "num_images": res["num_images"], "per_timestep": res["per_timestep"]},
                                 indent=2) + "\n", encoding="utf-8")
        png = plot_map_per_timestep(res["per_timestep"], out_dir / "map_per_timestep.png",
                                    title=f"{args.weights.name}: mAP against timestep (T={steps})")
        print(f"wrote {js} and {png}")
    if args.spikes:
        from spyolo.stats import ann_twin, build_spike_report, count_macs

        ann_macs = sum(count_macs(ann_twin(model), cfg.data.img_size).values())
        report = build_spike_report(monitor, counter, steps, cfg.data.img_size, ann_macs)
        print()
        print(report.format_table())
        js, csv_path = report.write_json(out_dir / "spike_stats.json"), report.write_csv(out_dir / "spike_stats.csv")
        print(f"wrote {js} and {csv_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, dispatch to the evaluation mode, map input errors to exit 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    text_mode = args.gt_dir is not None or args.det_dir is not None
    if args.weights is not None:
        if text_mode:
            parser.error("use either --weights (checkpoint mode) or --gt-dir/--det-dir (text mode), not both")
        from spyolo.config import ConfigError
        from spyolo.train.checkpoint import CheckpointError

        try:
            return run_checkpoint_mode(args)
        except (ConfigError, CheckpointError, ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.overrides:
        parser.error(f"config overrides {args.overrides} need --weights (checkpoint mode)")
    if args.gt_dir is None or args.det_dir is None:
        parser.error("text mode needs both --gt-dir and --det-dir (or use --weights for checkpoint mode)")
    try:
        return run_text_mode(args)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
