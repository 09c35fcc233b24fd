"""FPTT: the regulariser gradient equals autograd of R(W), and the traces follow the formulas."""

import pytest
import torch

from spyolo.train.fptt import FPTT


def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g, dtype=torch.float64)) for s in [(3, 4), (5,), (2, 2, 3)]]


@pytest.mark.parametrize("alpha_reg", [None, 0.1])
def test_regularizer_grad_matches_autograd(alpha_reg):
    params = _params()
    f = FPTT(params, alpha=0.5, beta=0.5, alpha_reg=alpha_reg)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # make the traces non-trivial
        for wb, lam in zip(f.w_bar, f.lam):
            wb.add_(torch.randn(wb.shape, generator=g, dtype=wb.dtype))
            lam.copy_(torch.randn(lam.shape, generator=g, dtype=lam.dtype))
    a = 0.5 if alpha_reg is None else alpha_reg
    # R(W) = -<W, lam> + (a/2)||W - W_bar||^2, differentiated by autograd.
    r = sum(-(p * lam).sum() + 0.5 * a * ((p - wb) ** 2).sum() for p, wb, lam in zip(params, f.w_bar, f.lam))
    expected = torch.autograd.grad(r, params)
    base = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]
    for p, b in zip(params, base):
        p.grad = b.clone()
    f.add_regularizer_grad()
    for p, b, e in zip(params, base, expected):
        torch.testing.assert_close(p.grad, b + e)
    assert float(f.regularizer_value()) == pytest.approx(float(r.detach()))


def test_unused_parameter_gets_regularizer_grad():
    params = _params()
    f = FPTT(params, alpha=0.5)
    with torch.no_grad():
        f.lam[0].fill_(2.0)
    f.add_regularizer_grad()
    torch.testing.assert_close(params[0].grad, torch.full_like(params[0], -2.0))


def test_traces_follow_the_formulas():
    params = _params()
    alpha, beta = 0.3, 0.6
    f = FPTT(params, alpha=alpha, beta=beta)
    g = torch.Generator().manual_seed(2)
    for _ in range(3):  # several updates, with the weights moving in between
        with torch.no_grad():
            for p in params:
                p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        lam_old = [t.clone() for t in f.lam]
        wb_old = [t.clone() for t in f.w_bar]
        f.update_traces()
        for p, lo, wo, lam, wb in zip(params, lam_old, wb_old, f.lam, f.w_bar):
            lam_new = lo - alpha * (p.detach() - wo)
            torch.testing.assert_close(lam, lam_new)
            torch.testing.assert_close(wb, (1 - beta) * wo + beta * p.detach() - (beta / alpha) * lam_new)


def test_initial_state_and_reset_to_average():
    params = _params()
    f = FPTT(params)
    for p, wb, lam in zip(params, f.w_bar, f.lam):
        torch.testing.assert_close(wb, p.detach())
        assert torch.count_nonzero(lam) == 0
        assert wb.data_ptr() != p.data_ptr()
    with torch.no_grad():
        for wb in f.w_bar:
            wb.fill_(0.25)
    f.reset_to_average()
    for p in params:
        assert torch.all(p == 0.25)


def test_state_dict_roundtrip_and_errors():
    params = _params()
    f = FPTT(params, alpha=0.4, beta=0.7, alpha_reg=0.1)
    f.update_traces()
    g = FPTT(_params(3))
    g.load_state_dict(f.state_dict())
    assert (g.alpha, g.beta, g.alpha_reg) == (0.4, 0.7, 0.1)
    for a, b in zip(f.lam + f.w_bar, g.lam + g.w_bar):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        FPTT(params, alpha=0.0)
    with pytest.raises(ValueError, match="traces"):
        FPTT(params[:1]).load_state_dict(f.state_dict())
