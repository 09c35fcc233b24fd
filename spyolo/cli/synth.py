"""Generate the spyolo synthetic shapes dataset as a PASCAL VOC year folder, in the YOLO layout
(``--yolo``), or (``--events``) simulated event-camera recordings in the Gen1 layout.

    spyolo synth --out data/synthvoc --train 2000 --test 500 --seed 0
    spyolo synth --yolo --out data/synthyolo --train 2000 --test 500 --seed 0
    spyolo synth --events --out data/events/SYNTH_EVENTS --train 40 --test 16 --seed 1 \
        --classes circle square triangle cross

(``python tools/make_synthetic_voc.py ...`` is the same program.) See
:mod:`spyolo.data.synthetic` for what the images contain and how the boxes and the
truncated/difficult flags are defined. ``--coco`` also writes each split as a COCO annotation
file (``annotations/instances_<split>.json``, for ``coco:...`` set entries). ``--overwrite``
regenerates a folder this generator wrote (it holds ``synthetic_spec.json``); a folder of other
data is never touched.

With ``--yolo`` the same images (for the same seed and settings) are written in ultralytics' layout:
``OUT/data.yaml`` with ``images/<split>/`` and ``labels/<split>/`` for ``train``, ``val`` and
``test``, set entries ``yolo:OUT/data.yaml:train`` (``val``, ``test``). YOLO labels have no
difficult flag: difficult objects are ordinary boxes there.

With ``--events`` (:mod:`spyolo.events.synthetic`), ``--train`` / ``--test`` count recordings
(1.5 s of a 128x96 sensor each, labels every 100 ms), written as ``OUT/train/`` and ``OUT/test/``
folders of ``recNNNNNN_td.dat`` + ``recNNNNNN_bbox.npy``: set entries ``gen1:OUT/train`` and
``gen1:OUT/test``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from spyolo.cli.common import command_parser, parse_command_line, run_command

__all__ = ["add_arguments", "build_parser", "main", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from spyolo.data.synthetic import SYNTHETIC_CLASSES

    parser.add_argument("--out", required=True, type=Path,
                        help="output VOC year folder (created; must be new or empty unless --overwrite)")
    parser.add_argument("--train", required=True, type=int,
                        help="number of trainval images (val is a seeded 15%% of them)")
    parser.add_argument("--test", required=True, type=int, help="number of test images")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes used to render (output does not depend on it)")
    parser.add_argument("--min-side", type=int, default=300, help="smallest image side, px")
    parser.add_argument("--max-side", type=int, default=500, help="largest image side, px")
    parser.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality 1..100")
    parser.add_argument("--classes", nargs="+", default=None, metavar="NAME",
                        help=f"subset of classes (default all: {' '.join(SYNTHETIC_CLASSES)})")
    parser.add_argument("--coco", action="store_true",
                        help="also write each split as COCO JSON: annotations/instances_<split>.json")
    parser.add_argument("--yolo", action="store_true",
                        help="the YOLO layout (data.yaml, images/<split>/, labels/<split>/) instead of VOC's")
    parser.add_argument("--events", action="store_true",
                        help="simulated event-camera recordings in the Gen1 layout instead of images "
                             "(--train/--test count recordings)")
    parser.add_argument("--overwrite", action="store_true",
                        help="regenerate a synthetic dataset spyolo generated earlier in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    return command_parser("synth", __doc__, add_arguments)


def run_events(args: argparse.Namespace) -> int:
    from spyolo.errors import ConfigError
    from spyolo.events.synthetic import EVENT_SPLITS, generate_synthetic_events, split_summary

    if args.coco or args.yolo:
        raise ConfigError("--coco and --yolo write image layouts; they do not apply to --events")
    out = generate_synthetic_events(args.out, args.train, args.test, args.seed, classes=args.classes,
                                    overwrite=args.overwrite, progress=not args.no_progress)
    print(f"wrote {args.train + args.test} event recordings (Gen1 layout) to {out.resolve()}")
    print(f"{'split':<10}{'recordings':>11}{'time stamps':>13}{'boxes':>8}{'events':>12}")
    for split in EVENT_SPLITS:
        n, stamps, boxes, events = split_summary(out / split)
        print(f"{split:<10}{n:>11}{stamps:>13}{boxes:>8}{events:>12}")
    return 0


def run(args: argparse.Namespace) -> int:
    from spyolo.data.synthetic import YOLO_SPLITS, generate_synthetic_voc, split_statistics

    if args.events:
        return run_events(args)

    out = generate_synthetic_voc(
        args.out, args.train, args.test, args.seed, classes=args.classes,
        min_side=args.min_side, max_side=args.max_side, jpeg_quality=args.jpeg_quality,
        workers=args.workers, progress=not args.no_progress, overwrite=args.overwrite, coco=args.coco,
        layout="yolo" if args.yolo else "voc")
    print(f"wrote {args.train + args.test} images to {out.resolve()}")
    if args.yolo:
        print(f"{'split':<10}{'images':>8}{'objects':>9}   set entry")
        for split in YOLO_SPLITS:
            labels = sorted((out / "labels" / split).glob("*.txt"))
            objects = sum(len(f.read_text().splitlines()) for f in labels)
            print(f"{split:<10}{len(labels):>8}{objects:>9}   yolo:{out / 'data.yaml'}:{split}")
        return 0
    print(f"{'split':<10}{'images':>8}{'objects':>9}{'difficult':>11}{'truncated':>11}")
    for split, stats in split_statistics(out).items():
        print(f"{split:<10}{stats.images:>8}{stats.objects:>9}{stats.difficult:>11}{stats.truncated:>11}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(run, parse_command_line(build_parser(), argv))


if __name__ == "__main__":
    sys.exit(main())
