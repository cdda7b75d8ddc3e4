"""The DSF (arXiv:2405.15731): every model's usual form equals its (A_t, B_t, C_t) recurrence."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.ssm import framework as fw

ZOO = fw.model_zoo(d=3, n=2, seed=0)


def sequence(T, d=3, seed=0):
    return torch.randn(T, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("name", fw.MODELS)
def test_usual_form_equals_the_dsf_recurrence_and_its_convolution(name):
    usual, dsf = ZOO[name]
    x = sequence(9)
    with torch.no_grad():
        system = dsf(x)
        y = fw.run_system(system)
        torch.testing.assert_close(usual(x), y, rtol=1e-10, atol=1e-12)
        Phi = fw.convolution_kernel(system)
    torch.testing.assert_close(torch.einsum("iajb,jb->ia", Phi, system.x), y, rtol=1e-10, atol=1e-12)
    assert (Phi[torch.triu_indices(9, 9, 1)[0], :, torch.triu_indices(9, 9, 1)[1]] == 0).all()  # causal


@settings(max_examples=6, deadline=None)
@given(T=st.integers(1, 8), seed=st.integers(0, 99))
def test_forms_agree_for_any_length(T, seed):
    x = sequence(T, seed=seed)
    with torch.no_grad():
        for name in ("softmax attention", "linear attention", "selective SSM (S6)", "RG-LRU"):
            usual, dsf = ZOO[name]
            torch.testing.assert_close(usual(x), fw.run_system(dsf(x)), rtol=1e-10, atol=1e-12)


def test_softmax_attention_kernel_is_the_attention_matrix_times_wv():
    Wq, Wk, Wv = (torch.randn(3, 3, dtype=torch.float64) for _ in range(3))
    x = sequence(6)
    Phi = fw.convolution_kernel(fw.softmax_attention_system(x, Wq, Wk, Wv))
    q, k = x @ Wq.T, x @ Wk.T
    weights = (q @ k.T / 3 ** 0.5).masked_fill(~fw.causal_mask(6), float("-inf")).softmax(-1)
    torch.testing.assert_close(Phi, weights[:, None, :, None] * Wv[None, :, None, :])


def test_structured_kernel_recurrence_equals_the_dense_system():
    Wq, Wk, Wv = (torch.randn(3, 3, dtype=torch.float64) / 3 for _ in range(3))
    x = sequence(7)
    for normalize in (True, False):
        dense = fw.run_system(fw.kernel_attention_system(x, Wq, Wk, Wv, fw.elu_features, normalize))
        torch.testing.assert_close(fw.kernel_attention_recurrent(x, Wq, Wk, Wv, fw.elu_features, normalize),
                                   dense)


def test_taylor_features_give_the_truncated_exponential():
    z = torch.randn(5, 3, dtype=torch.float64)
    w = torch.randn(5, 3, dtype=torch.float64)
    s = (z * w).sum(1)
    expected = sum(s ** p / torch.tensor(float(__import__("math").factorial(p))) for p in range(5))
    got = (fw.taylor_features(z, 4) * fw.taylor_features(w, 4)).sum(1)
    torch.testing.assert_close(got, expected)


def test_properties_tell_the_models_apart():
    x, other = sequence(5, seed=1), sequence(5, seed=2)
    with torch.no_grad():
        props = {name: fw.system_properties(dsf(x), dsf(other)) for name, (_, dsf) in ZOO.items()}
    assert props["softmax attention"]["state grows"]
    assert props["linear attention (unnormalised)"]["A = I"]
    assert not props["linear attention (unnormalised)"]["A input-dependent"]
    assert props["linear attention"]["A scalar (lambda I)"] and props["linear attention"]["A input-dependent"]
    s6 = props["selective SSM (S6)"]
    assert s6["A input-dependent"] and not s6["A scalar (lambda I)"]
    assert not props["LTI SSM (S4D-like)"]["A input-dependent"]
    assert props["RG-LRU"]["state size N"] == 3 and props["RG-LRU"]["A diagonal"]
    assert props["selective SSM (S6)"]["state size N"] == 6


def test_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match="`x`"):
        fw.softmax_attention(torch.zeros(2, 3, 4), *(torch.zeros(3, 3),) * 3)
    with pytest.raises(TypeError, match="`x`"):
        fw.kernel_attention(torch.zeros(2, 3, dtype=torch.long), *(torch.zeros(3, 3),) * 3, fw.elu_features)
    with pytest.raises(ValueError, match="`order`"):
        fw.taylor_features(torch.zeros(2, 3), -1)
