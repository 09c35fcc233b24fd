"""Config loading: YAML -> typed dataclasses, overrides, and clear errors for bad keys."""

from pathlib import Path

import pytest

from spyolo.config import Config, ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_shipped_configs_load(name):
    cfg = load_config(ROOT / "configs" / name)
    assert cfg.data.img_size % 32 == 0
    assert cfg.model.kind in ("spyv4", "ann")


def test_voc_config_is_the_papers_setup():
    cfg = load_config(ROOT / "configs" / "spyv4_voc.yaml")
    assert cfg.data.train_sets == ["VOC2007:trainval", "VOC2012:trainval"]
    assert cfg.data.test_sets == ["VOC2007:test"]
    assert cfg.data.img_size == 416 and cfg.model.timesteps == 8
    assert cfg.model.kind == "spyv4" and cfg.train.method == "fptt"


def test_overrides_are_typed():
    cfg = load_config(
        ROOT / "configs" / "spyv4_voc.yaml",
        ["train.epochs=3", "model.width=0.5", "train.lr=2e-4", "data.train_sets=[A:train,B:val]",
         "train.fptt_alpha_reg=0.1", "data.keep_difficult=true", "data.classes=null"],
    )
    assert cfg.train.epochs == 3 and isinstance(cfg.train.epochs, int)
    assert cfg.model.width == 0.5 and cfg.train.lr == pytest.approx(2e-4)
    assert cfg.data.train_sets == ["A:train", "B:val"]
    assert cfg.train.fptt_alpha_reg == pytest.approx(0.1)
    assert cfg.data.keep_difficult is True and cfg.data.classes is None


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["train.epoch=3"])
    msg = str(e.value)
    assert "unknown key 'train.epoch'" in msg and "Did you mean 'epochs'" in msg
    assert "Valid keys of 'train'" in msg and "batch_size" in msg


def test_unknown_section_and_bad_values(tmp_path):
    with pytest.raises(ConfigError, match="unknown section 'trian'.*Did you mean 'train'"):
        load_config(None, ["trian.epochs=3"])
    with pytest.raises(ConfigError, match="expected an integer"):
        load_config(None, ["train.epochs=three"])
    with pytest.raises(ConfigError, match="must be one of fptt, bptt"):
        load_config(None, ["train.method=rtrl"])
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(None, ["epochs=3"])
    with pytest.raises(ConfigError, match="multiple of 32"):
        load_config(None, ["data.img_size=100"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  kind: spyv4\n  widht: 0.5\n")
    with pytest.raises(ConfigError) as e:
        load_config(bad)
    assert str(bad) in str(e.value) and "widht" in str(e.value) and "width" in str(e.value)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_head_geometry_defaults_come_from_the_models() -> None:
    from spyolo.models.heads import ANCHOR_REF_SIZE, DEFAULT_ANCHORS, DEFAULT_MASKS

    model = Config().model
    assert model.anchors == [list(a) for a in DEFAULT_ANCHORS]
    assert model.masks == [list(m) for m in DEFAULT_MASKS]
    assert model.anchor_ref_size == ANCHOR_REF_SIZE


def test_config_choices_are_the_owners_constants() -> None:
    """One source of truth: the config validates against the tuples the owning modules check."""
    import subprocess
    import sys

    from spyolo import config
    from spyolo.data.transforms import EVAL_INTERPOLATIONS
    from spyolo.eval import voc
    from spyolo.events import frames
    from spyolo.models import readout, spyv4
    from spyolo.snn import ltc, state
    from spyolo.train import optim, steps
    from spyolo.utils import choices, runtime

    owners = {
        ("model", "kind"): spyv4.MODEL_KINDS, ("model", "readout"): readout.READOUTS,
        ("model", "state_init"): state.STATE_INITS, ("train", "ltc_backend"): ltc.LTC_BACKENDS,
        ("model", "tau_mode"): ltc.TAU_MODES,
        ("train", "optimizer"): optim.OPTIMIZERS, ("train", "scheduler"): optim.SCHEDULERS,
        ("train", "method"): steps.TRAIN_METHODS, ("train", "step_weighting"): steps.STEP_WEIGHTINGS,
        ("train", "amp"): runtime.AMP_MODES, ("train", "channels_last"): runtime.CHANNELS_LAST_MODES,
        ("eval", "metric"): voc.EVAL_METRICS, ("data", "event_resize"): frames.EVENT_RESIZE_MODES,
        ("data", "event_representation"): frames.EVENT_REPRESENTATIONS,
        ("data", "eval_resize"): choices.EVAL_RESIZE_MODES,
    }
    for key, owned in owners.items():
        assert config._CHOICES[key] is owned, key
    assert config._CHOICES[("model", "input")] == tuple(spyv4.INPUT_CHANNELS)
    assert config._CHOICES[("data", "eval_interpolation")] == tuple(EVAL_INTERPOLATIONS)
    # and reading them keeps the config light (no torch import)
    code = "import sys, spyolo.config; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_base_config_files_are_merged_key_by_key_and_checked(tmp_path) -> None:
    from spyolo.config import ConfigError, load_config

    (tmp_path / "recipe.yaml").write_text("model:\n  timesteps: 4\n  threshold: 0.5\ntrain:\n  lr: 0.002\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "data.yaml").write_text(
        "base: ../recipe.yaml\nmodel:\n  timesteps: 2\ndata:\n  img_size: 256\n")
    cfg = load_config(tmp_path / "sub" / "data.yaml", ["train.epochs=3"])
    assert (cfg.model.timesteps, cfg.model.threshold, cfg.train.lr, cfg.data.img_size, cfg.train.epochs) == (
        2, 0.5, 0.002, 256, 3)
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle of base files"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: missing.yaml\n")
    with pytest.raises(ConfigError, match="missing.yaml: config file not found"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("base: [1, 2]\n")
    with pytest.raises(ConfigError, match="base: expected the path"):
        load_config(tmp_path / "d.yaml")
    (tmp_path / "e.yaml").write_text("base: recipe.yaml\ntrain:\n  lrr: 1\n")
    with pytest.raises(ConfigError, match="lrr"):
        load_config(tmp_path / "e.yaml")
