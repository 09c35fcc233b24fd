"""Export a trained checkpoint for deployment.

    spyolo export --weights runs/synthetic/weights/best.pt --out weights/model.pt [--half]

(``python tools/export.py ...`` is the same program.)

    spyolo export --weights runs/synthetic/weights/best.pt --format onnx --out weights/model.onnx

``--format pt`` (the default) strips a training checkpoint down to what inference needs
(model, config, class names): it drops the optimiser, scheduler, FPTT traces and RNG states
(about 4/5 of the file); ``--half`` stores floating-point tensors as float16 (loading casts them
back to float32), halving it again. The result loads with ``Detector.from_checkpoint``,
``spyolo eval`` and ``spyolo demo``, but cannot be resumed.

``--format onnx`` writes one timestep of the model as an ONNX graph whose inputs and outputs
include the neuron states (``images, v_0 .. v_18 -> head1, head2, v_0_next .. v_18_next``; the
ANN twin: ``images -> head1, head2``) and a JSON sidecar beside it (``model.json``: class names,
input size and resize, T, anchors, thresholds, state names and shapes); ``spyolo demo --weights
model.onnx`` and ``spyolo.export.OnnxDetector`` run it with onnxruntime. It needs the ``export``
extra (``pip install 'spyolo[export]'``). A model trained with ``model.state_init=uniform`` is
refused unless ``--zero-init`` accepts zero initial membranes.

An existing output file (for onnx: either file) is replaced only with ``--exist-ok``; an
output may never be the input, nor a folder. The two files of an onnx export are written
together: both or neither.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spyolo.cli.common import command_parser, parse_command_line, run_command
from spyolo.errors import ConfigError, RunFolderError

__all__ = ["FORMATS", "add_arguments", "build_parser", "main", "run"]

FORMATS = ("pt", "onnx")
KEEP = ("model", "config", "class_names", "epoch", "best", "history", "spyolo_version", "run")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, type=Path,
                   help="checkpoint written by spyolo train, or named pretrained weights (spyolo weights lists them)")
    p.add_argument("--out", type=Path, default=None,
                   help="output file (default: next to --weights, <stem>_export.<format>; for a name: "
                        "<name>_export.<format> here)")
    p.add_argument("--format", choices=FORMATS, default="pt",
                   help="pt: inference checkpoint (default); onnx: ONNX graph of one timestep + JSON sidecar")
    p.add_argument("--half", action="store_true", help="pt: store floating-point tensors as float16")
    p.add_argument("--opset", type=int, default=None, help="onnx: ONNX opset (>= 17; default 17)")
    p.add_argument("--zero-init", action="store_true",
                   help="onnx: export a model trained with model.state_init=uniform with zero initial membranes")
    p.add_argument("--exist-ok", action="store_true", help="replace an existing output file")


def build_parser() -> argparse.ArgumentParser:
    return command_parser("export", __doc__, add_arguments)


def export_pt(src: Path, dst: Path, half: bool) -> Path:
    """Write the inference checkpoint of ``src`` to ``dst``."""
    from spyolo.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(src)
    out = {k: ckpt[k] for k in KEEP if k in ckpt}
    if half:
        out["model"] = {k: (v.half() if v.is_floating_point() else v) for k, v in out["model"].items()}
    out["exported_from"] = str(src)
    return save_checkpoint(out, dst)


def run(args: argparse.Namespace) -> int:
    from spyolo.hub import is_weights_name, resolve_weights

    named = is_weights_name(args.weights)
    src = resolve_weights(args.weights)
    default = Path(f"{args.weights}_export.{args.format}") if named else src.with_name(
        f"{src.stem}_export.{args.format}")
    dst = args.out if args.out is not None else default
    if args.half and args.format != "pt":
        raise ConfigError("--half applies to --format pt only")
    if (args.zero_init or args.opset is not None) and args.format != "onnx":
        raise ConfigError("--zero-init and --opset apply to --format onnx only")
    outputs = [dst]
    if args.format == "onnx":
        from spyolo.export import sidecar_path

        if dst.suffix.lower() != ".onnx":
            raise ConfigError(f"{dst}: an ONNX export must end in .onnx (its sidecar gets .json)")
        outputs.append(sidecar_path(dst))
    for out, what in zip(outputs, ("output", "ONNX sidecar")):
        if out.is_dir():
            raise ConfigError(f"{out}: a folder stands where the {what} file should be written; --out names the "
                              f"output file (nothing was written)")
    for out in outputs:
        if out.exists() and src.exists() and out.resolve() == src.resolve():
            raise ConfigError(f"{out}: the output would replace the input checkpoint; choose another --out")
    for out in outputs:
        if out.exists() and not args.exist_ok:
            raise RunFolderError(f"{out}: already exists; choose another --out or pass --exist-ok to replace it")
    if args.format == "onnx":
        from spyolo.export import OPSET, export_onnx

        export_onnx(src, dst, opset=OPSET if args.opset is None else args.opset, allow_zero_init=args.zero_init)
        print(f"wrote {dst} ({dst.stat().st_size / 2**20:.1f} MiB) and {outputs[1]}")
        return 0
    export_pt(src, dst, args.half)
    print(f"wrote {dst} ({dst.stat().st_size / 2**20:.1f} MiB, from {src.stat().st_size / 2**20:.1f} MiB)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(run, parse_command_line(build_parser(), argv))


if __name__ == "__main__":
    sys.exit(main())
