"""Convert a Darknet YOLOv4-tiny (``.weights`` + ``.cfg``) into a spyolo ANN-twin checkpoint.

    spyolo convert yolov4-tiny.weights --cfg yolov4-tiny.cfg --names coco.names --out weights/yolov4_tiny_coco.pt

(``python tools/convert.py ...`` is the same program.)

The checkpoint holds the ANN twin (``model.kind=ann``) with the network's width, classes, anchors,
masks and centre scale (``scale_x_y`` -> ``model.scale_xy``) and input size (``[net]`` width and
height -> ``data.img_size``) from the cfg, Darknet's bilinear input resize
(``data.eval_interpolation=linear``), and the class names from ``--names`` (a Darknet
``.names`` file, one name per line). ``--cfg`` and ``--names`` default to the files beside the
weights with the same stem (``yolov4-tiny.cfg``, ``yolov4-tiny.names``); the cfg is checked
against the weights (layer by layer, then the number of values). Without a cfg the class count is
read off the file's size and YOLOv4-tiny's original decoding (``scale_x_y`` 1.05) is assumed;
without names the classes are called ``class0``, ``class1``, ...

The result works like any spyolo checkpoint: ``spyolo demo --weights OUT.pt photo.jpg``,
``spyolo eval``, ``spyolo export``, ``model.init_from=OUT.pt`` (SPYv4 or the twin started from it)
and ``train.distill_from=OUT.pt``. An existing ``--out`` is replaced only with ``--exist-ok``, and
never when it is one of the inputs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from spyolo.cli.common import command_parser, parse_command_line, run_command
from spyolo.errors import ConfigError, RunFolderError

__all__ = ["add_arguments", "build_parser", "convert_darknet", "main", "run"]

log = logging.getLogger("spyolo.cli")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("weights", type=Path, help="Darknet YOLOv4-tiny .weights file")
    p.add_argument("--cfg", type=Path, default=None, help="its .cfg (default: <weights stem>.cfg beside it, if any)")
    p.add_argument("--names", type=Path, default=None,
                   help="class names, one per line (default: <weights stem>.names beside it, if any)")
    p.add_argument("--out", type=Path, required=True, help="the spyolo checkpoint to write (.pt)")
    p.add_argument("--exist-ok", action="store_true", help="replace an existing --out")


def build_parser() -> argparse.ArgumentParser:
    return command_parser("convert", __doc__, add_arguments)


def convert_darknet(weights: str | Path, out: str | Path, cfg: str | Path | None = None,
                    names: str | Path | None = None) -> dict:
    """Write the spyolo checkpoint of a Darknet YOLOv4-tiny to ``out``; return the checkpoint dict."""
    import spyolo
    from spyolo.checkpoint import save_checkpoint
    from spyolo.config import Config, config_to_dict, validate
    from spyolo.models.darknet import companion_names, darknet_model, read_darknet_names

    model, dark = darknet_model(weights, cfg=cfg)
    names_path = Path(names) if names is not None else companion_names(weights)
    if names_path is not None:
        class_names = read_darknet_names(names_path, dark.num_classes)
    else:
        class_names = [f"class{i}" for i in range(dark.num_classes)]
        log.warning("%s: no class names given (--names) and none beside it: the classes are called class0..class%d",
                    weights, dark.num_classes - 1)
    config = Config()
    config.model.kind = "ann"
    config.model.width = dark.width
    config.model.anchors = [list(a) for a in model.anchors.tolist()]
    config.model.masks = [list(m) for m in model.masks]
    config.model.anchor_ref_size = model.anchor_ref_size
    config.model.scale_xy = model.scale_xy
    config.model.timesteps = 1
    config.data.eval_interpolation = "linear"  # Darknet's (and OpenCV's) bilinear resize
    if dark.spec is not None:
        height, width = dark.spec.input_size
        if height != width:
            raise ConfigError(f"{dark.spec.path}: [net] is {width}x{height}; spyolo runs square inputs "
                              f"(data.img_size), convert a cfg with width = height")
        config.data.img_size = height
    config.train.name = Path(out).stem
    validate(config, str(weights))
    if dark.spec is None:
        log.warning("%s: no cfg given (--cfg) and none beside it: YOLOv4-tiny's default anchors, masks, 416 px "
                    "input and scale_x_y 1.05 are assumed", weights)
    ckpt = {
        "model": model.state_dict(),
        "config": config_to_dict(config),
        "class_names": class_names,
        "spyolo_version": spyolo.__version__,
        "run": {
            "converted_from": str(weights),
            "darknet_cfg": dark.spec.path if dark.spec else None,
            "darknet_names": str(names_path) if names_path else None,
            "darknet_version": list(dark.version),
            "darknet_seen": dark.seen,
            "command": " ".join(sys.argv),
        },
    }
    save_checkpoint(ckpt, out)
    return ckpt


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    inputs = [p for p in (args.weights, args.cfg, args.names) if p is not None]
    if out.is_dir():
        raise ConfigError(f"{out}: --out is a folder; give the checkpoint's file name (e.g. {out / 'model.pt'})")
    for path in inputs:
        if out.exists() and path.exists() and out.resolve() == path.resolve():
            raise ConfigError(f"{out}: the output would replace an input; choose another --out")
    if out.exists() and not args.exist_ok:
        raise RunFolderError(f"{out}: already exists; choose another --out or pass --exist-ok to replace it")
    ckpt = convert_darknet(args.weights, out, cfg=args.cfg, names=args.names)
    cfg = ckpt["config"]
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB): ANN twin, width {cfg['model']['width']:g}, "
          f"{len(ckpt['class_names'])} classes, {cfg['data']['img_size']} px, scale_xy {cfg['model']['scale_xy']:g}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(run, parse_command_line(build_parser(), argv))


if __name__ == "__main__":
    sys.exit(main())
