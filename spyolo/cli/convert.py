"""Convert other projects' weights into a spyolo checkpoint: a Darknet YOLOv4-tiny (``.weights`` +
``.cfg``) or the authors' released SPYv4 (byin-cwi/sFPTT's ``trained_weight_8step.pth``).

    spyolo convert yolov4-tiny.weights --cfg yolov4-tiny.cfg --names coco.names --out weights/yolov4_tiny_coco.pt
    spyolo convert trained_weight_8step.pth --out sfptt_voc.pt

(``python tools/convert.py ...`` is the same program; ``spyolo weights`` fetches and converts both
by name.)

A Darknet file gives the ANN twin (``model.kind=ann``) with the network's width, classes, anchors,
masks and centre scale (``scale_x_y`` -> ``model.scale_xy``) and input size (``[net]`` width and
height -> ``data.img_size``) from the cfg, Darknet's bilinear input resize
(``data.eval_interpolation=linear``), and the class names from ``--names`` (a Darknet
``.names`` file, one name per line). ``--cfg`` and ``--names`` default to the files beside the
weights with the same stem (``yolov4-tiny.cfg``, ``yolov4-tiny.names``); the cfg is checked
against the weights (layer by layer, then the number of values). Without a cfg the class count is
read off the file's size and YOLOv4-tiny's original decoding (``scale_x_y`` 1.05) is assumed;
without names the classes are called ``class0``, ``class1``, ...

The release's state dict (``torch.save(YoloBody(...).state_dict())``, also with DataParallel's
``module.`` prefix) gives SPYv4 with every tensor mapped (spyolo/models/sfptt.py; the release
stores each LTC cell twice, and the copies are checked equal) and the release's settings
(``configs/spyv4_voc.yaml``: 416 px, T = 8, its neuron constants, anchors and read-out); its classes
are the 20 VOC names in the release's order unless ``--names`` gives others. The two scalars its
forward pass never reads (``yolo_tau1``, ``yolo_tau2``) are reported. A file that is neither says
what it holds.

The result works like any spyolo checkpoint: ``spyolo demo --weights OUT.pt --source photo.jpg``,
``spyolo eval``, ``spyolo export``, ``model.init_from=OUT.pt`` and (an ANN twin only)
``train.distill_from=OUT.pt``. An existing ``--out`` is replaced only with ``--exist-ok``, and
never when it is one of the inputs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from spyolo.cli.common import command_parser, parse_command_line, run_command
from spyolo.errors import ConfigError, RunFolderError

__all__ = ["add_arguments", "build_parser", "main", "run"]

log = logging.getLogger("spyolo.cli")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("weights", type=Path,
                   help="a Darknet YOLOv4-tiny .weights file, or the sFPTT release's SPYv4 state dict (.pth)")
    p.add_argument("--cfg", type=Path, default=None,
                   help="Darknet: its .cfg (default: <weights stem>.cfg beside it, if any)")
    p.add_argument("--names", type=Path, default=None,
                   help="class names, one per line (Darknet default: <weights stem>.names beside it, if any; "
                        "the release's default: the 20 VOC classes)")
    p.add_argument("--out", type=Path, required=True, help="the spyolo checkpoint to write (.pt)")
    p.add_argument("--exist-ok", action="store_true", help="replace an existing --out")


def build_parser() -> argparse.ArgumentParser:
    return command_parser("convert", __doc__, add_arguments)


def describe(ckpt: dict) -> str:
    """One line: what the converted checkpoint holds."""
    cfg, run = ckpt["config"], ckpt.get("run", {})
    names = ckpt["class_names"]
    shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
    if cfg["model"]["kind"] == "ann":
        return (f"ANN twin, width {cfg['model']['width']:g}, {len(names)} classes ({shown}), "
                f"{cfg['data']['img_size']} px, scale_xy {cfg['model']['scale_xy']:g}")
    unused = run.get("unused") or []
    return (f"SPYv4 (the sFPTT release), width {cfg['model']['width']:g}, {len(names)} classes ({shown}), "
            f"{cfg['data']['img_size']} px, T={cfg['model']['timesteps']}; {run.get('mapped', 0)} tensors mapped, "
            f"none left at init ({run.get('checked_copies', 0)} stored twice, the copies equal); unused: "
            + (", ".join(unused) + " (never read by the release's forward pass)" if unused else "none"))


def run(args: argparse.Namespace) -> int:
    from spyolo.hub.convert import convert_weights

    out: Path = args.out
    inputs = [p for p in (args.weights, args.cfg, args.names) if p is not None]
    if out.is_dir():
        raise ConfigError(f"{out}: --out is a folder; give the checkpoint's file name (e.g. {out / 'model.pt'})")
    for path in inputs:
        if out.exists() and path.exists() and out.resolve() == path.resolve():
            raise ConfigError(f"{out}: the output would replace an input; choose another --out")
    if out.exists() and not args.exist_ok:
        raise RunFolderError(f"{out}: already exists; choose another --out or pass --exist-ok to replace it")
    ckpt = convert_weights(args.weights, out, cfg=args.cfg, names=args.names)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB): {describe(ckpt)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(run, parse_command_line(build_parser(), argv))


if __name__ == "__main__":
    sys.exit(main())
