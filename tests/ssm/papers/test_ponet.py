"""Tan et al. 2022 (PoNet): the three poolings against their definitions, the mixer's shape and cost."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.ssm.papers import ponet


@settings(max_examples=20, deadline=None)
@given(T=st.integers(1, 20), segment=st.integers(1, 7), window=st.sampled_from([1, 3, 5]),
       seed=st.integers(0, 99))
def test_the_poolings_match_their_definitions(T, segment, window, seed):
    x = torch.randn(2, T, 3, generator=torch.Generator().manual_seed(seed))
    smp, lmp = ponet.segment_max_pool(x, segment), ponet.local_max_pool(x, window)
    for t in range(T):
        start = t // segment * segment
        torch.testing.assert_close(smp[:, t], x[:, start:start + segment].amax(1))
        lo, hi = max(0, t - window // 2), min(T, t + window // 2 + 1)
        torch.testing.assert_close(lmp[:, t], x[:, lo:hi].amax(1))


def test_global_aggregation_is_one_attention_of_the_mean_query():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 7, 4, generator=g) for _ in range(3))
    out = ponet.global_aggregation(q, k, v)
    weights = torch.softmax((q.mean(1)[:, None] * k).sum(-1) / 2.0, -1)  # sqrt(D) = 2
    torch.testing.assert_close(out[:, 0], (weights[..., None] * v).sum(1))
    # the same summary for any order of the tokens: pooling is permutation invariant
    perm = torch.randperm(7, generator=g)
    torch.testing.assert_close(ponet.global_aggregation(q[:, perm], k[:, perm], v[:, perm]), out)


def test_the_mixers_keep_the_shape_and_ponet_mixes_every_token_into_the_first():
    for mixer in (ponet.PoNetMixer(8), ponet.AttentionMixer(8)):
        x = torch.randn(3, 40, 8, requires_grad=True)
        y = mixer(x)
        assert y.shape == x.shape
        y[:, 0].sum().backward()
        assert (x.grad.abs().sum(-1) > 0).all()  # position 0 depends on the last token too


def test_the_task_labels_the_most_frequent_symbol_after_a_cls_token():
    tokens, labels = ponet.most_frequent(50, T=30, symbols=4, seed=2)
    assert tokens.shape == (50, 31) and (tokens[:, 0] == 4).all() and (tokens[:, 1:] < 4).all()
    counts = torch.nn.functional.one_hot(tokens[:, 1:], 4).sum(1)
    assert torch.equal(counts.gather(1, labels[:, None])[:, 0], counts.max(1).values)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="`window` must be odd"):
        ponet.local_max_pool(torch.zeros(1, 4, 2), 2)
    with pytest.raises(ValueError, match="`segment`"):
        ponet.segment_max_pool(torch.zeros(1, 4, 2), 0)
    with pytest.raises(ValueError, match="`x` must be a 3-D"):
        ponet.segment_max_pool(torch.zeros(4, 2), 2)
