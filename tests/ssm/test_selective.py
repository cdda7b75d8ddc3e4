"""Mamba's selective scan: the reference against the step loop, per-channel scans, and bad input."""
import pytest
import torch

from course.ssm import scan as S, selective as SS


def problem(B=2, T=17, D=4, N=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return dict(u=r(B, T, D), delta=torch.nn.functional.softplus(r(B, T, D)), A=-r(D, N).exp(),
                B=r(B, T, N), C=r(B, T, N), D=r(D))


def test_the_reference_is_the_step_loop_and_a_scan_per_channel_and_state():
    kw = problem()
    y = SS.selective_scan(**kw)
    torch.testing.assert_close(y, SS.selective_scan_step_loop(**kw))
    gates, inputs = SS.discretize(kw["u"], kw["delta"], kw["A"], kw["B"])
    d, n = 2, 1  # one (channel, state) pair is the diagonal scan with a_t = exp(delta_t A[d, n])
    h = S.scan_step_loop(gates[:, :, d, n, None], inputs[:, :, d, n, None])[..., 0]
    assert torch.all((gates > 0) & (gates <= 1))
    torch.testing.assert_close(SS.selective_scan(**{**kw, "C": torch.zeros_like(kw["C"])}), kw["D"] * kw["u"])
    C = torch.zeros_like(kw["C"])
    C[:, :, n] = 1.0
    torch.testing.assert_close(SS.selective_scan(**{**kw, "C": C, "D": None})[:, :, d], h)


def test_the_gradient_matches_the_step_loops_in_float64():
    kw = problem(T=9)
    leaves = {k: v.clone().requires_grad_() for k, v in kw.items()}
    others = {k: v.clone().requires_grad_() for k, v in kw.items()}
    SS.selective_scan(**leaves).sum().backward()
    SS.selective_scan_step_loop(**others).sum().backward()
    for k in kw:
        torch.testing.assert_close(leaves[k].grad, others[k].grad)


def test_bad_input_names_the_argument():
    kw = problem()
    with pytest.raises(ValueError, match="`A` must be negative"):
        SS.selective_scan(**{**kw, "A": -kw["A"]})
    with pytest.raises(ValueError, match="`delta` must be > 0"):
        SS.selective_scan(**{**kw, "delta": -kw["delta"]})
    with pytest.raises(ValueError, match=r"`B` must be of shape \[B, T, N\]"):
        SS.selective_scan(**{**kw, "B": kw["B"][:, :, :2]})
    with pytest.raises(ValueError, match=r"`A` must be \[D, N\]"):
        SS.selective_scan(**{**kw, "A": kw["A"][:3]})
    with pytest.raises(TypeError, match="`C` must have u's dtype"):
        SS.selective_scan(**{**kw, "C": kw["C"].float()})
