"""BN statistics re-estimated with the final weights: shared or per timestep (a learning-quality diagnostic)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_eval_weights import make_checkpoint, tiny_cfg
from torch import nn

from spyolo.eval.bn_recalibration import TimestepBNStats, batch_norms, estimate_bn_stats
from spyolo.models import build_model
from spyolo.snn import reset_states

TOOL = Path(__file__).resolve().parents[1] / "tools" / "eval.py"


def test_shared_stats_are_the_mean_of_batch_statistics_and_the_model_is_left_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)).eval()
    bn = model[1]
    bn.running_mean.fill_(0.3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batches = [torch.randn(5, 3, 8, 8) * (i + 1) for i in range(3)]
    [stats] = estimate_bn_stats(model, batches, timesteps=4, per_timestep=True)  # not spiking: one step, one set
    with torch.no_grad():
        outs = [model[0](x) for x in batches]
    mean = torch.stack([o.mean(dim=(0, 2, 3)) for o in outs]).mean(0)
    var = torch.stack([o.transpose(0, 1).reshape(4, -1).var(dim=1, unbiased=True) for o in outs]).mean(0)
    torch.testing.assert_close(stats.means[0], mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(stats.variances[0], var, rtol=1e-4, atol=1e-6)
    assert not model.training and bn.momentum == 0.1
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_per_timestep_sets_average_to_the_shared_set(tiny_voc_root):
    cfg = tiny_cfg(tiny_voc_root)
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes=8).eval()
    batches = [torch.rand(4, 3, 64, 64) for _ in range(2)]
    shared = estimate_bn_stats(model, batches, timesteps=2, per_timestep=False)
    per = estimate_bn_stats(model, batches, timesteps=2, per_timestep=True)
    assert len(shared) == 1 and len(per) == 2 and len(per[0].means) == len(batch_norms(model))
    for j in range(len(per[0].means)):
        torch.testing.assert_close((per[0].means[j] + per[1].means[j]) / 2, shared[0].means[j])
        torch.testing.assert_close((per[0].variances[j] + per[1].variances[j]) / 2, shared[0].variances[j])
    # The membrane starts at zero: a tau BN sees other inputs at step 1 than at step 2.
    tau = [j for j, (name, m) in enumerate((n, m) for n, m in model.named_modules() if m in batch_norms(model))
           if name.endswith("tau_bn")][1]
    assert not torch.allclose(per[0].means[tau], per[1].means[tau])
    with pytest.raises(ValueError, match="no batches"):
        estimate_bn_stats(model, [], timesteps=2, per_timestep=False)


def test_wrapper_loads_set_t_before_step_t_and_restarts_after_a_reset(tiny_voc_root):
    cfg = tiny_cfg(tiny_voc_root)
    model = build_model(cfg.model, num_classes=8).eval()
    sets = estimate_bn_stats(model, [torch.rand(2, 3, 64, 64)], timesteps=2, per_timestep=True)
    seen = []
    first = batch_norms(model)[0]
    first.register_forward_pre_hook(lambda m, _: seen.append(m.running_mean.clone()))
    wrapped = TimestepBNStats(model, sets)
    assert wrapped.is_spiking
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        for _ in range(2):
            reset_states(wrapped)
            for _ in range(3):  # the third step reuses the last set
                wrapped(x)
    expected = [sets[0].means[0], sets[1].means[0], sets[1].means[0]] * 2
    assert len(seen) == 6
    for got, want in zip(seen, expected):
        torch.testing.assert_close(got, want)


def test_eval_tool_recalibrates(tiny_voc_root: Path, tmp_path: Path, capsys):
    from spyolo.cli import eval as tool

    ckpt = make_checkpoint(tmp_path / "weights" / "last.pt", tiny_voc_root)
    args = ["--weights", str(ckpt), "--no-progress", "--device", "cpu", "--max-images", "4", "train.batch_size=4"]
    assert tool.main([*args, "--recalibrate-bn", "2", "--bn-per-timestep"]) == 0
    captured = capsys.readouterr()
    assert "BN statistics re-estimated over 2 training batches of 4: 2 set(s), one per timestep" in captured.err
    assert "images evaluated: 4" in captured.out
    assert tool.main([*args, "--bn-per-timestep"]) == 2
    assert "--bn-per-timestep needs --recalibrate-bn" in capsys.readouterr().err
