"""Evaluate object detections with the exact PASCAL VOC protocol.

Checkpoint mode: run a trained model on the test split of its config::

    spyolo eval --weights runs/synthetic/weights/best.pt [section.key=value ...] \\
        [--split test] [--coco] [--spikes [--twin ANN.pt]] [--per-timestep] [--out DIR] [--json PATH] [--plots DIR]

Text mode: ground truth and detections as one text file per image::

    spyolo eval --gt-dir GT_DIR --det-dir DET_DIR [--classes FILE] [--iou 0.5] [--json PATH] [--plots DIR] [--coco]

(``python tools/eval.py ...`` is the same program.)

Checkpoint mode: ``section.key=value`` overrides change the checkpoint's config (e.g.
``data.root=/data/VOCdevkit``, ``model.timesteps=4``); ``--timesteps``, ``--conf``, ``--nms``,
``--batch-size``, ``--workers`` and ``--max-images`` are short forms of such overrides;
``--split val`` evaluates the ``val`` split of the same year folders. ``--spikes`` adds the
per-layer spike table (neurons, firing rate, ACs, MACs, energy beside the ANN twin) and writes
``spike_stats.json`` / ``spike_stats.csv`` and ``firing_rates.png``; the table ends with the line
``SPYv4 X% of the twin's mAP at Y x its energy``, the ANN twin's mAP measured on the same split with
the same settings: the twin is ``--twin PATH`` (a trained ANN twin checkpoint of the same classes and
width), else the checkpoint's ``train.distill_from`` when that is one (without a twin: the energy
ratio alone; :mod:`spyolo.eval.twin`). ``--per-timestep`` reads
the mAP at every timestep t = 1..T in the same pass (anytime accuracy) and writes
``map_per_timestep.json`` and ``map_per_timestep.png``. Those files go to ``--out`` (default:
``eval/`` next to the run's ``weights/`` folder). See docs/spike_stats.md. ``--weights`` also takes
the name of pretrained weights (``spyolo weights`` lists them; fetched on first use). A dataset whose
classes differ from the model's is scored with the classes matched by name (case and spaces ignored,
COCO's spellings of VOC's classes aliased; the matching is printed): detections of model classes
without a dataset class are dropped, dataset classes without a model class score AP 0;
``eval.class_map=FILE`` (YAML ``model class: dataset class`` lines) pairs them explicitly.

Text mode: GT lines are ``class x1 y1 x2 y2 [difficult]``, detection lines are
``class score x1 y1 x2 y2`` (VOC pixels, 1-based inclusive).

Both modes print the per-class table with VOC2007 11-point and area (VOC2010+) AP. Exit
status 0 on success, 2 on bad input (the message names the file and the problem).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from spyolo.cli.common import command_parser, parse_command_line, run_command
from spyolo.errors import ConfigError

__all__ = ["OPTION_KEYS", "add_arguments", "build_parser", "main", "run"]

OPTION_KEYS = {
    "timesteps": "model.timesteps",
    "conf": "eval.conf_thresh",
    "nms": "eval.nms_iou",
    "batch_size": "eval.batch_size",
    "workers": "data.workers",
    "max_images": "eval.max_images",
}
"""Checkpoint-mode options that are short forms of config overrides (option -> key)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    ck = parser.add_argument_group("checkpoint mode (run a trained model on a dataset split)")
    ck.add_argument("--weights", type=Path,
                    help="checkpoint written by spyolo train (weights/best.pt), or a named pretrained model "
                         "(spyolo weights lists them: sfptt-voc, yolov4-tiny-coco, ...)")
    ck.add_argument("overrides", nargs="*", metavar="section.key=value",
                    help="overrides of the checkpoint's config, e.g. data.root=/data/VOCdevkit")
    ck.add_argument("--split", default=None,
                    help="split name replacing the one in each data.test_sets entry (e.g. val; default: as configured)")
    ck.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    ck.add_argument("--amp", choices=("off", "bf16"), default="off", help="autocast dtype (default off: float32)")
    ck.add_argument("--timesteps", type=int, default=None, help="= model.timesteps=N")
    ck.add_argument("--conf", type=float, default=None, help="= eval.conf_thresh=X (default 0.001)")
    ck.add_argument("--nms", type=float, default=None, help="= eval.nms_iou=X (default 0.5)")
    ck.add_argument("--batch-size", type=int, default=None, help="= eval.batch_size=N")
    ck.add_argument("--workers", type=int, default=None, help="= data.workers=N")
    ck.add_argument("--max-images", type=int, default=None, help="= eval.max_images=N (0: all)")
    ck.add_argument("--spikes", action="store_true",
                    help="per-layer firing rates, synaptic operations and energy (spiking models)")
    ck.add_argument("--twin", type=Path, default=None, metavar="ANN.pt",
                    help="with --spikes: the ANN twin's checkpoint (model.kind=ann, the same classes and width), "
                         "evaluated on the same split with the same settings for the line 'SPYv4 X%% of the twin's "
                         "mAP at Y x its energy' (default: the checkpoint's train.distill_from when that is one)")
    ck.add_argument("--per-timestep", action="store_true", help="mAP at every timestep t = 1..T in one pass")
    ck.add_argument("--recalibrate-bn", type=int, default=0, metavar="N",
                    help="diagnostic: re-estimate the BatchNorm statistics with the final weights over N batches "
                         "of the training split (training augmentation, train.batch_size, seed train.seed) "
                         "before evaluating (docs/learning_quality.md)")
    ck.add_argument("--bn-per-timestep", action="store_true",
                    help="with --recalibrate-bn: one set of BN statistics per timestep, loaded before that step")
    ck.add_argument("--records", type=Path, default=None, metavar="FILE.npz",
                    help="write the ground truth and the detections of every image (numpy .npz) for resampling "
                         "the test images (benchmarks/bench_quality.py's intervals: spyolo.eval.voc.map_of_images)")
    ck.add_argument("--out", type=Path, default=None,
                    help="folder for the --spikes / --per-timestep files (default: <run>/eval)")
    ck.add_argument("--no-progress", action="store_true", help="no progress bar")
    text = parser.add_argument_group("text mode (one .txt file per image)")
    text.add_argument("--gt-dir", type=Path, help="folder of <image_id>.txt ground-truth files "
                      "with lines 'class x1 y1 x2 y2 [difficult]'")
    text.add_argument("--det-dir", type=Path, help="folder of <image_id>.txt detection files "
                      "with lines 'class score x1 y1 x2 y2'")
    text.add_argument("--classes", type=Path, default=None,
                      help="class list file, one name per line (default: sorted GT class names)")
    out = parser.add_argument_group("options and outputs (both modes)")
    out.add_argument("--iou", type=float, default=None,
                     help="IoU threshold, inclusive, '+1 pixel' convention (default 0.5; checkpoint mode: "
                          "= eval.iou_threshold)")
    out.add_argument("--json", type=Path, default=None,
                     help="write map_voc07, map_area, ap_voc07, ap_area (fractions) to this file")
    out.add_argument("--plots", type=Path, default=None,
                     help="write precision-recall PNGs (one per class + a summary) to this folder")
    out.add_argument("--coco", action="store_true",
                     help="also compute COCO-style AP@[.5:.95] and AP@.5 with pycocotools")


def build_parser() -> argparse.ArgumentParser:
    return command_parser("eval", __doc__, add_arguments)


def _write_outputs(res: dict[str, Any], args: argparse.Namespace, extra: dict[str, Any]) -> None:
    """The outputs both modes share: the AP table, ``--json`` and ``--plots``."""
    from spyolo.eval.report import format_ap_table, write_json

    print(format_ap_table(res))
    if args.json is not None:
        write_json(res, args.json, extra=extra or None)
        print(f"wrote {args.json}")
    if args.plots is not None:
        from spyolo.eval.plots import plot_pr_curves  # matplotlib only when asked

        paths = plot_pr_curves(res, args.plots)
        print(f"wrote {len(paths)} plots to {args.plots}")


def run_text_mode(args: argparse.Namespace) -> int:
    """Evaluate text-file results."""
    from spyolo.eval.textfiles import evaluator_from_text, load_text_results, read_class_file

    iou = 0.5 if args.iou is None else args.iou
    if not (0.0 < iou <= 1.0):
        raise ConfigError(f"--iou must be in (0, 1]; got {iou}")
    class_names = read_class_file(args.classes) if args.classes is not None else None
    data = load_text_results(args.gt_dir, args.det_dir, class_names)
    for msg in data.warnings:
        print(f"warning: {msg}", file=sys.stderr)
    ev = evaluator_from_text(data, iou_threshold=iou)
    res = ev.compute()
    extra = {}
    if args.coco:
        res["coco"] = extra["coco"] = ev.compute_coco()
    _write_outputs(res, args, extra)
    return 0


def _default_out(weights: Path) -> Path:
    parent = weights.resolve().parent
    return (parent.parent if parent.name == "weights" else parent) / "eval"


def run_checkpoint_mode(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint on a dataset split; print the tables; write the optional files."""
    from spyolo.eval.evaluate import evaluate_checkpoint
    from spyolo.utils.io import atomic_write_json

    overrides = list(args.overrides)
    overrides += [f"{key}={getattr(args, opt)}" for opt, key in OPTION_KEYS.items() if getattr(args, opt) is not None]
    if args.iou is not None:
        overrides.append(f"eval.iou_threshold={args.iou}")
    twin = None
    if args.spikes:
        from spyolo.eval.twin import find_twin

        twin = find_twin(args.weights, args.twin)  # a --twin that is not an ANN twin fails before the evaluation
    elif args.twin is not None:
        raise ConfigError("--twin needs --spikes (the energy report that compares with the twin)")
    ev = evaluate_checkpoint(
        args.weights, overrides, split=args.split, device=args.device, amp=args.amp, coco=args.coco,
        per_timestep=args.per_timestep, spikes=args.spikes, recalibrate_bn=args.recalibrate_bn,
        bn_per_timestep=args.bn_per_timestep, progress=not args.no_progress, records=args.records is not None,
    )
    res = ev.result
    if args.records is not None:
        from spyolo.eval.report import write_records

        write_records(res.pop("records"), args.records)
        print(f"wrote {args.records}")
    print(ev.describe())
    if ev.classes is not None and not ev.classes.identical:
        from spyolo.eval.classes import describe_matching

        for line in describe_matching(ev.classes):
            print(line)
    extra = {"coco": res["coco"]} if args.coco else {}
    if args.per_timestep:
        extra["per_timestep"] = res["per_timestep"]
    _write_outputs(res, args, extra)
    print(f"images evaluated: {res['num_images']}")
    if not (args.spikes or args.per_timestep):
        return 0

    out_dir = args.out if args.out is not None else _default_out(args.weights)
    if args.per_timestep:
        from spyolo.stats.report import format_per_timestep_table, plot_map_per_timestep

        print()
        print(format_per_timestep_table(res["per_timestep"]))
        js = atomic_write_json(out_dir / "map_per_timestep.json", {
            "weights": str(args.weights), "timesteps": ev.timesteps, "num_images": res["num_images"],
            "per_timestep": res["per_timestep"]})
        png = plot_map_per_timestep(res["per_timestep"], out_dir / "map_per_timestep.png",
                                    title=f"{args.weights.name}: mAP against timestep (T={ev.timesteps})")
        print(f"wrote {js} and {png}")
    if args.spikes:
        from spyolo.eval.twin import compare_with_twin

        report = ev.spikes
        print()
        print(report.format_table())
        comparison = compare_with_twin(ev, twin, device=args.device, amp=args.amp, progress=not args.no_progress)
        print(comparison.format_line())
        js = report.write_json(out_dir / "spike_stats.json", extra=comparison.to_dict())
        csv_path = report.write_csv(out_dir / "spike_stats.csv")
        png = report.plot_firing_rates(out_dir / "firing_rates.png",
                                       title=f"{args.weights.name}: firing rate per layer")
        print(f"wrote {js}, {csv_path} and {png}")
    return 0


def run(args: argparse.Namespace) -> int:
    text_mode = args.gt_dir is not None or args.det_dir is not None
    if args.weights is not None:
        if text_mode:
            raise ConfigError("use either --weights (checkpoint mode) or --gt-dir/--det-dir (text mode), not both")
        return run_checkpoint_mode(args)
    if args.overrides:
        raise ConfigError(f"config overrides {args.overrides} need --weights (checkpoint mode)")
    if args.twin is not None:
        raise ConfigError("--twin needs --weights and --spikes (checkpoint mode)")
    if args.gt_dir is None or args.det_dir is None:
        raise ConfigError("text mode needs both --gt-dir and --det-dir (or use --weights for checkpoint mode)")
    return run_text_mode(args)


def main(argv: list[str] | None = None) -> int:
    return run_command(run, parse_command_line(build_parser(), argv))


if __name__ == "__main__":
    sys.exit(main())
