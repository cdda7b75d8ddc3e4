"""Griffin's and HGRN's layers: the scanned RG-LRU against the paper's equations step by step, HGRN's
bounds and gates, local attention's window."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.ssm import layers


@settings(max_examples=8, deadline=None)
@given(B=st.integers(1, 3), T=st.integers(1, 24), blocks=st.sampled_from([1, 2, 4]), seed=st.integers(0, 99))
def test_rglru_through_the_scan_op_equals_the_papers_equations_step_by_step(B, T, blocks, seed):
    torch.manual_seed(seed)
    layer = layers.RGLRU(8, blocks).double()
    x = torch.randn(B, T, 8, dtype=torch.float64)
    torch.testing.assert_close(layer(x), layers.rglru_step_loop(layer, x), rtol=1e-9, atol=1e-10)


def test_rglru_starts_with_a_to_the_c_in_its_init_range_and_passes_gradients():
    torch.manual_seed(0)
    layer = layers.RGLRU(64)
    a_c = torch.sigmoid(layer.Lambda) ** layer.c
    assert a_c.min() >= 0.9 - 1e-5 and a_c.max() <= 0.999 + 1e-5
    x = torch.randn(2, 10, 64, requires_grad=True)
    layer(x).sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(layer.Lambda.grad).all()


@settings(max_examples=20, deadline=None)
@given(H=st.integers(1, 6), seed=st.integers(0, 99))
def test_hgrn_lower_bounds_rise_with_depth_and_gates_stay_in_gamma_one(H, seed):
    torch.manual_seed(seed)
    gamma = layers.hgrn_lower_bounds(3 * torch.randn(H, 8))
    assert (gamma[0] == 0).all() and (gamma.diff(dim=0) >= 0).all() and (gamma < 1).all()
    layer = layers.HGRNLayer(8)
    x = 5 * torch.randn(2, 7, 8)
    for k in range(H):
        lam = layer.forget_gate(x, gamma[k])
        assert (lam >= gamma[k] - 1e-6).all() and (lam <= 1).all()


def test_hgrn_model_without_bounds_has_zero_bounds_and_differs_only_by_gamma():
    with_b, without = layers.HGRNModel(10, 16, 3, True), layers.HGRNModel(10, 16, 3, False)
    assert (without.lower_bounds() == 0).all()
    assert sum(p.numel() for p in with_b.parameters()) - sum(p.numel() for p in without.parameters()) == 48
    assert without(torch.randint(10, (2, 5))).shape == (2, 5, 10)


@pytest.mark.parametrize("window", [1, 3, 6])
def test_local_attention_sees_only_its_window_and_never_the_future(window):
    torch.manual_seed(0)
    attention = layers.LocalAttention(8, window)
    x = torch.randn(1, 12, 8)
    for s in (0, 5, 11):
        y = x.clone()
        y[0, s] += 1.0
        changed = (attention(y) - attention(x)).abs().amax(-1)[0] > 1e-7
        expected = torch.zeros(12, dtype=torch.bool)
        expected[s:s + window] = True
        assert torch.equal(changed, expected)


def test_griffin_model_shapes_and_named_errors():
    model = layers.GriffinModel(11, 16, "RAR", window=3)
    assert model(torch.randint(11, (2, 9))).shape == (2, 9, 11)
    with pytest.raises(ValueError, match="kind"):
        layers.GriffinModel(11, 16, "RX")
    with pytest.raises(TypeError, match="tokens"):
        model(torch.randn(2, 9))
    with pytest.raises(ValueError, match="width"):
        layers.LocalAttention(10, 3, heads=4)
