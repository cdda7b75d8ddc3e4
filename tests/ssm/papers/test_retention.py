"""ViR / RetNet retention: the parallel, recurrent and chunkwise forms agree."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.ssm.papers import retention as rt


def qkv(T, H=2, dk=3, dv=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, H, T, d, generator=g, dtype=torch.float64) for d in (dk, dk, dv)]


@settings(max_examples=8, deadline=None)
@given(T=st.integers(1, 14), chunk=st.integers(1, 9), seed=st.integers(0, 99))
def test_three_forms_agree(T, chunk, seed):
    Q, K, V = qkv(T, seed=seed)
    gammas = rt.multiscale_gammas(2)
    parallel = rt.retention_parallel(Q, K, V, gammas)
    torch.testing.assert_close(rt.retention_recurrent(Q, K, V, gammas), parallel)
    torch.testing.assert_close(rt.retention_chunkwise(Q, K, V, gammas, chunk), parallel)


def test_parallel_form_is_the_decay_masked_sum():
    Q, K, V = (t[0, 0] for t in qkv(5))
    gamma = 0.7
    expected = torch.stack([sum(gamma ** (n - m) * (Q[n] @ K[m]) * V[m] for m in range(n + 1))
                            for n in range(5)])
    torch.testing.assert_close(rt.retention_parallel(Q, K, V, gamma), expected)


def test_gamma_one_is_unnormalised_linear_attention():
    Q, K, V = (t[0, 0] for t in qkv(6))
    torch.testing.assert_close(rt.retention_chunkwise(Q, K, V, 1.0, 4),
                               ((Q @ K.T).tril()) @ V)


def test_patch_sequence_puts_the_class_token_last():
    images = torch.arange(2 * 8 * 8, dtype=torch.float64).reshape(2, 8, 8)
    seq = rt.patch_sequence(images)
    assert seq.shape == (2, 17, 4)
    torch.testing.assert_close(seq[0, 0], images[0, :2, :2].reshape(-1))
    torch.testing.assert_close(seq[0, 1], images[0, :2, 2:4].reshape(-1))
    assert (seq[:, -1] == 0).all()


def test_counts():
    assert rt.retention_flops(100, 4, 4, "parallel") == 100 * 100 * 8
    assert rt.retention_flops(100, 4, 4, "recurrent") == 2 * 100 * 16
    assert rt.retention_flops(10, 1, 1, "chunkwise", chunk=4) == (16 * 2 + 8) * 2 + (4 * 2 + 4)


def test_bad_input_is_refused_by_name():
    Q, K, V = qkv(4)
    with pytest.raises(ValueError, match="`gamma`"):
        rt.retention_parallel(Q, K, V, 1.5)
    with pytest.raises(ValueError, match="`K`"):
        rt.retention_recurrent(Q, K[..., :2], V, 0.9)
    with pytest.raises(ValueError, match="`chunk`"):
        rt.retention_chunkwise(Q, K, V, 0.9, 0)
