"""The authors' released SPYv4 (byin-cwi/sFPTT): its state-dict layout converts into a spyolo checkpoint
with every tensor mapped, and the converted network's heads are the mapping's at every timestep.

The test writes a state dict in the release's layout itself, from the release's module names and
shapes (``nets/snn_yolo_v4_less.py`` and ``nets/yolo_layers.py`` of the release), at a quarter of
the width (the layout is the same at every width; the release's file is width 1), with random values.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spyolo.checkpoint import load_checkpoint, load_model
from spyolo.cli import convert as convert_cli
from spyolo.config import config_to_dict, load_config
from spyolo.data.voc import VOC_CLASSES
from spyolo.errors import ConfigError, TransferError
from spyolo.models import SPYv4, transfer_weights
from spyolo.snn import reset_states

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 0.25

# The release's cells: (name, input channels, output channels, kernel, conv bias) at width 1, in the
# order of its network.network list; its two heads follow.
CELLS = [
    ("conv1", 3, 32, 3, True), ("conv2", 32, 64, 3, True),
    *[(f"block{b}.conv{i}", cin, cout, k, False)
      for b, c in ((1, 64), (2, 128), (3, 256))
      for i, cin, cout, k in ((1, c, c, 3), (2, c // 2, c // 2, 3), (3, c // 2, c // 2, 3), (4, c, c, 1))],
    ("conv3", 512, 512, 3, True), ("conv_P5", 512, 256, 1, True), ("conv_yolo_1", 256, 512, 3, True),
    ("conv_up", 256, 128, 1, True), ("conv_yolo_2", 384, 256, 3, True),
]  # fmt: skip
HEADS = [("conv_P5_yolo_1", 512), ("conv_P5_yolo_2", 256)]

# The test's own reading of the mapping: release cell -> spyolo layer, cell part -> LTCConv2d part.
SPYOLO_LAYER = {"conv1": "conv1", "conv2": "conv2", "conv3": "conv3", "conv_P5": "conv_p5", "conv_yolo_1": "neck1",
                "conv_up": "conv_up", "conv_yolo_2": "neck2",
                **{f"block{b}.conv{i}": f"block{b}.c{i}" for b in (1, 2, 3) for i in (1, 2, 3, 4)}}
SPYOLO_PART = {"conv1_x": "conv", "BN": "bn", "conv_tauM": "tau_conv", "BN1": "tau_bn"}


def _scaled(c: int) -> int:
    return 3 if c == 3 else max(8, int(c * WIDTH))


def release_state_dict(seed: int = 0, classes: int = 20) -> dict[str, torch.Tensor]:
    """A state dict as ``YoloBody(anchors_mask, classes, parts=8).state_dict()`` writes it (random values)."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    cells: dict[str, dict[str, torch.Tensor]] = {}
    for name, cin, cout, k, bias in CELLS:
        cin, cout = _scaled(cin), _scaled(cout)
        part = {
            "conv1_x.weight": torch.randn(cout, cin, k, k, generator=gen) * (2.0 / (cin * k * k)) ** 0.5,
            "conv_tauM.weight": torch.randn(cout, cout, 3, 3, generator=gen) * 0.05,
            "conv_tauM.bias": torch.randn(cout, generator=gen) * 0.1,
        }
        if bias:
            part["conv1_x.bias"] = torch.randn(cout, generator=gen) * 0.1
        for bn in ("BN", "BN1"):
            part[f"{bn}.weight"] = 1.0 + 0.3 * torch.randn(cout, generator=gen)
            part[f"{bn}.bias"] = 0.5 + 0.3 * torch.randn(cout, generator=gen)  # currents that make the cells fire
            part[f"{bn}.running_mean"] = 0.1 * torch.randn(cout, generator=gen)
            part[f"{bn}.running_var"] = 0.5 + torch.rand(cout, generator=gen)
            part[f"{bn}.num_batches_tracked"] = torch.tensor(1234)
        cells[name] = part
        state.update({f"network.{name}.{k}": v for k, v in part.items()})
    out = 3 * (5 + classes)
    for name, cin in HEADS:
        state[f"network.{name}.weight"] = torch.randn(out, _scaled(cin), 1, 1, generator=gen) * 0.1
        state[f"network.{name}.bias"] = torch.randn(out, generator=gen) * 0.1
    state["network.yolo_tau1"] = torch.tensor([4.2])
    state["network.yolo_tau2"] = torch.tensor([3.7])
    for index, (name, *_rest) in enumerate(CELLS):  # the same modules again, through network.network
        state.update({f"network.network.{index}.{k}": v.detach() for k, v in cells[name].items()})
    return state


def mapped_model(state: dict[str, torch.Tensor], classes: int = 20) -> SPYv4:
    """SPYv4 built directly with the release's weights under the test's own mapping (strict load)."""
    model = SPYv4(num_classes=classes, width=WIDTH)
    mapped = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[1] in ("network", "yolo_tau1", "yolo_tau2"):
            continue
        if parts[1].startswith("conv_P5_yolo_"):
            mapped[f"head{parts[1][-1]}.{parts[2]}"] = value
            continue
        cell = ".".join(parts[1:-2])
        mapped[f"{SPYOLO_LAYER[cell]}.{SPYOLO_PART[parts[-2]]}.{parts[-1]}"] = value
    model.load_state_dict(mapped, strict=True)
    return model.eval()


@torch.no_grad()
def heads_over_time(model, image: torch.Tensor, steps: int = 8) -> list[torch.Tensor]:
    reset_states(model)
    return [torch.cat([o.flatten(1) for o in model(image)], dim=1) for _ in range(steps)]


@pytest.mark.parametrize("prefix", ["", "module."])
def test_release_layout_converts_with_every_tensor_mapped(tmp_path, capsys, prefix: str) -> None:
    state = release_state_dict()
    path = tmp_path / "trained_weight_8step.pth"
    torch.save({prefix + k: v for k, v in state.items()}, path)
    out = tmp_path / "sfptt_voc.pt"
    assert convert_cli.main([str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    cells = len(CELLS) * 14 - 12  # 14 tensors per cell, no conv bias in the 12 CSP-block cells
    assert f"{cells + 4} tensors mapped, none left at init ({cells} stored twice, the copies equal)" in printed
    assert "unused: network.yolo_tau1, network.yolo_tau2 (never read by the release's forward pass)" in printed
    ckpt = load_checkpoint(out)
    assert ckpt["class_names"] == list(VOC_CLASSES)
    config = ckpt["config"]
    assert config["model"]["kind"] == "spyv4" and config["model"]["timesteps"] == 8
    assert config["data"]["img_size"] == 416 and config["model"]["width"] == WIDTH
    # the release's settings are configs/spyv4_voc.yaml's
    voc = config_to_dict(load_config(ROOT / "configs" / "spyv4_voc.yaml"))
    voc["model"]["width"], voc["train"]["name"] = WIDTH, "sfptt_voc"
    assert config == voc

    converted = load_model(out).model.eval()  # a strict load of the checkpoint's state dict
    direct = mapped_model(state)
    image = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    got, want = heads_over_time(converted, image), heads_over_time(direct, image)
    diffs = [float((a - b).abs().max()) for a, b in zip(got, want)]
    assert max(diffs) <= 1e-4, diffs
    assert float((want[0] - want[-1]).abs().max()) > 1e-3  # the neurons' state changes the heads over time


def test_release_layout_refusals_and_other_files(tmp_path, capsys) -> None:
    def convert(source: dict | None, name: str, *extra: str) -> tuple[int, str]:
        path = tmp_path / name
        if source is not None:
            torch.save(source, path)
        code = convert_cli.main([str(path), "--out", str(tmp_path / f"{name}.pt"), *extra])
        return code, capsys.readouterr().err

    state = release_state_dict()
    differ = dict(state)
    differ["network.network.3.BN.bias"] = differ["network.network.3.BN.bias"] + 1.0
    code, err = convert(differ, "differ.pth")
    assert code == 2 and "network.block1.conv2.BN.bias and network.network.3.BN.bias are the same tensor" in err
    missing = {k: v for k, v in state.items() if "conv_yolo_2.BN1" not in k and not k.startswith("network.network.18.")}
    code, err = convert(missing, "missing.pth")
    assert code == 2 and "its tensors do not fill SPYv4" in err and "neck2.tau_bn" in err
    extra = {**state, "network.attention.weight": torch.zeros(3)}
    code, err = convert(extra, "extra.pth")
    assert code == 2 and "keys it does not have (network.attention.weight)" in err
    code, err = convert({"fc.weight": torch.zeros(2, 2), "fc.bias": torch.zeros(2)}, "other.pth")
    assert code == 2 and err.count("\n") == 1
    assert "a PyTorch checkpoint with 2 tensors, first keys fc.weight, fc.bias" in err
    assert "Darknet header" not in err and "version" not in err
    code, err = convert(state, "with_cfg.pth", "--cfg", str(tmp_path / "x.cfg"))
    assert code == 2 and "--cfg" in err
    # other class names: --names
    names = tmp_path / "three.names"
    names.write_text("cat\ndog\nbird\n")
    path = tmp_path / "three.pth"
    torch.save(release_state_dict(classes=3), path)
    assert convert_cli.main([str(path), "--names", str(names), "--out", str(tmp_path / "three.pt")]) == 0
    assert load_checkpoint(tmp_path / "three.pt")["class_names"] == ["cat", "dog", "bird"]
    assert "3 classes (cat, dog, bird)" in capsys.readouterr().out
    # a spyolo checkpoint is one already
    code, err = convert(None, "three.pt")
    assert code == 2 and "already a spyolo checkpoint (model.kind=spyv4, 3 classes)" in err


def test_release_file_as_init_from_and_distill_from(tmp_path, make_tiny_config) -> None:
    state = release_state_dict()
    path = tmp_path / "trained_weight_8step.pth"
    torch.save(state, path)
    model = SPYv4(num_classes=20, width=WIDTH)
    report = transfer_weights(model, path)
    assert not report.left_at_init and not report.skipped
    assert sorted(report.unused) == ["network.yolo_tau1", "network.yolo_tau2"]
    assert "the sFPTT release's SPYv4 state dict" in report.summary()
    image = torch.rand(1, 3, 64, 64)
    assert all(torch.equal(a, b) for a, b in zip(heads_over_time(model.eval(), image, 3),
                                                 heads_over_time(mapped_model(state), image, 3)))
    # as a teacher, the raw file is refused with the way to convert it (a converted checkpoint teaches)
    from spyolo.train.distill import load_teacher

    with pytest.raises(ConfigError, match="the sFPTT release's raw state dict.*convert it first"):
        load_teacher(path, SPYv4(num_classes=20, width=WIDTH), torch.device("cpu"))
    with pytest.raises(TransferError, match="has shape"):
        transfer_weights(SPYv4(num_classes=20, width=0.5), path)
