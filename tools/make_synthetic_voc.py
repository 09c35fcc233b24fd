"""Generate the spyolo synthetic shapes dataset as a PASCAL VOC year folder.

Example (from the repository root)::

    python tools/make_synthetic_voc.py --out data/synthvoc --train 2000 --test 500 --seed 0

See :mod:`spyolo.data.synthetic` for what the images contain and how the boxes and the
truncated/difficult flags are defined.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spyolo.data.synthetic import (  # noqa: E402  (import after the sys.path line)
    SYNTHETIC_CLASSES,
    generate_synthetic_voc,
    split_statistics,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="Write the spyolo synthetic shapes dataset in PASCAL VOC layout.")
    parser.add_argument("--out", required=True, type=Path,
                        help="output VOC year folder (created; must be empty unless --overwrite)")
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
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a synthetic dataset already in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the dataset and print per-split counts; returns the exit status."""
    args = parse_args(argv)
    try:
        out = generate_synthetic_voc(
            args.out, args.train, args.test, args.seed, classes=args.classes,
            min_side=args.min_side, max_side=args.max_side, jpeg_quality=args.jpeg_quality,
            workers=args.workers, progress=not args.no_progress, overwrite=args.overwrite)
    except (ValueError, FileExistsError) as error:
        print(f"make_synthetic_voc: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.train + args.test} images to {out.resolve()}")
    print(f"{'split':<10}{'images':>8}{'objects':>9}{'difficult':>11}{'truncated':>11}")
    for split, stats in split_statistics(out).items():
        print(f"{split:<10}{stats.images:>8}{stats.objects:>9}{stats.difficult:>11}"
              f"{stats.truncated:>11}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
