"""The aggregator zoo: GNP's special cases, LCM's tree, the LSTM's order, padding, and bad input.

Properties (hypothesis): the fixed and GNP aggregators are invariant to the order within each
segment, LCM's operator is commutative, a segment's aggregate never depends on the other segments
of the batch, and `to_padded` lays out the CSR order row by row.
"""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course.gnn.aggregators import (
    AGGREGATORS,
    CommutativeMonoid,
    PowerMeanPool,
    RecurrentAggregation,
    generalized_norm_pool,
    make_aggregator,
    order_within_segments,
    to_padded,
)
from course.gnn.segment import segment

D = 3


@st.composite
def segments(draw, max_segments=6, max_degree=9):
    """(src [E, D], ptr [N + 1]) with empty segments allowed."""
    degrees = draw(st.lists(st.integers(0, max_degree), min_size=1, max_size=max_segments))
    ptr = torch.tensor([0] + degrees).cumsum(0)
    seed = draw(st.integers(0, 2 ** 16))
    src = torch.randn(int(ptr[-1]), D, generator=torch.Generator().manual_seed(seed))
    return src, ptr


def shuffled(src, ptr, seed=0):
    """src with every segment in a random order (the segments stay in place)."""
    key = torch.rand(src.shape[0], generator=torch.Generator().manual_seed(seed))
    return src[order_within_segments(key, ptr)]


def models():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return {name: make_aggregator(name, D) for name in AGGREGATORS}


@settings(max_examples=25, deadline=None)
@given(data=segments(), seed=st.integers(0, 100))
def test_fixed_and_gnp_aggregators_ignore_the_order_within_a_segment(data, seed):
    src, ptr = data
    for name, agg in models().items():
        if name in ("lcm", "lstm"):
            continue
        torch.testing.assert_close(agg(shuffled(src, ptr, seed), ptr), agg(src, ptr), msg=name)


@settings(max_examples=20, deadline=None)
@given(data=segments())
def test_every_aggregator_reduces_each_segment_on_its_own(data):
    """A segment's aggregate is the same alone as in the batch (LCM pads each to its own width)."""
    src, ptr = data
    for name, agg in models().items():
        together = agg(src, ptr)
        assert together.shape == (ptr.numel() - 1, D), name
        for i in range(ptr.numel() - 1):
            alone = agg(src[ptr[i]:ptr[i + 1]], torch.tensor([0, int(ptr[i + 1] - ptr[i])]))
            torch.testing.assert_close(together[i:i + 1], alone, msg=f"{name}, segment {i}")


@settings(max_examples=20, deadline=None)
@given(data=segments())
def test_to_padded_lays_out_the_csr_order_row_by_row(data):
    src, ptr = data
    dense, mask = to_padded(src, ptr, fill=7.0)
    assert torch.equal(mask.sum(1), ptr.diff())
    assert torch.equal(dense[mask], src) and (dense[~mask] == 7.0).all()


def test_order_within_segments_sorts_each_segment_and_keeps_them_in_place():
    ptr = torch.tensor([0, 3, 3, 5])
    key = torch.tensor([0.5, 0.1, 0.9, 0.2, 0.0])
    assert order_within_segments(key, ptr).tolist() == [1, 0, 2, 4, 3]


def test_gnp_is_the_mean_the_sum_and_tends_to_the_max():
    src, ptr = torch.randn(9, D), torch.tensor([0, 3, 3, 8, 9])
    gnp = PowerMeanPool(D)  # p = q = 1 at the start
    torch.testing.assert_close(gnp(src, ptr), segment(src, ptr, "mean"))
    with torch.no_grad():
        gnp.q.zero_()
    torch.testing.assert_close(gnp(src, ptr), segment(src, ptr, "sum"))
    x = torch.rand(9, D)  # non-negative: GNP_{p,0} -> max as p grows, from above
    far = generalized_norm_pool(x, ptr, torch.full((D,), 200.0), torch.zeros(D))
    torch.testing.assert_close(far, segment(x, ptr, "max"), atol=0.03, rtol=0.0)
    assert (far >= segment(x, ptr, "max") - 1e-5).all()


def test_gnp_with_p_2_and_q_0_is_the_euclidean_norm():
    x, ptr = torch.rand(7, D), torch.tensor([0, 4, 7])
    norm = generalized_norm_pool(x, ptr, torch.full((D,), 2.0), torch.zeros(D), eps=0.0 + 1e-12)
    expected = torch.stack([x[:4].norm(dim=0), x[4:].norm(dim=0)])
    torch.testing.assert_close(norm, expected)


def test_gnp_stays_finite_for_large_p_and_has_gradients_for_p_and_q():
    gnp = PowerMeanPool(D, p=50.0)
    src, ptr = 10 * torch.randn(20, D), torch.tensor([0, 10, 20])
    out = gnp(src, ptr)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(gnp.p.grad).all() and gnp.q.grad.abs().sum() > 0


def test_lcm_operator_is_commutative_and_its_tree_is_log_deep():
    lcm = CommutativeMonoid(D)
    a, b = torch.randn(5, D), torch.randn(5, D)
    torch.testing.assert_close(lcm.combine(a, b), lcm.combine(b, a))
    assert [lcm.depth(d) for d in (0, 1, 2, 3, 4, 5, 8, 9, 64)] == [0, 0, 1, 2, 2, 3, 3, 4, 6]
    one = torch.randn(1, D)  # a single neighbour is its own aggregate; none gives the identity e
    torch.testing.assert_close(lcm(one, torch.tensor([0, 1])), one)
    torch.testing.assert_close(lcm(one[:0], torch.tensor([0, 0])), lcm.identity[None].detach())


def test_lcm_pads_with_its_identity_and_pairs_neighbours_in_a_balanced_tree():
    lcm = CommutativeMonoid(D)
    x = torch.randn(3, D)
    e = lcm.identity[None]
    expected = lcm.combine(lcm.combine(x[0:1], x[1:2]), lcm.combine(x[2:3], e))
    torch.testing.assert_close(lcm(x, torch.tensor([0, 3])), expected)
    two = lcm(x[:2], torch.tensor([0, 2]))
    torch.testing.assert_close(lcm(x[[1, 0]], torch.tensor([0, 2])), two)  # commutativity: d = 2


def test_monoid_penalty_vanishes_for_an_associative_operator_with_its_identity():
    lcm = CommutativeMonoid(D)
    lcm.combine = lambda a, b: a + b  # (R^D, +, 0) is a commutative monoid
    assert lcm.monoid_penalty(torch.randn(8, D)).item() < 1e-10
    src, ptr = torch.randn(11, D), torch.tensor([0, 5, 11])
    torch.testing.assert_close(lcm(shuffled(src, ptr), ptr), segment(src, ptr, "sum"))
    assert CommutativeMonoid(D).monoid_penalty(torch.randn(8, D)).item() > 0  # a GRU is not


def test_the_recurrent_aggregator_reads_in_key_order_and_is_order_sensitive():
    torch.manual_seed(0)
    lstm = RecurrentAggregation(D, 5)
    src, ptr = torch.randn(6, D), torch.tensor([0, 2, 6, 6])
    out = lstm(src, ptr)
    assert out.shape == (3, 5) and (out[2] == 0).all()  # an empty segment gives 0
    reverse = torch.tensor([1, 0, 5, 4, 3, 2])
    assert not torch.allclose(lstm(src[reverse], ptr), out)
    key = -torch.arange(6.0)  # descending key: reads each segment backwards
    torch.testing.assert_close(lstm(src, ptr, key=key), lstm(src[reverse], ptr))


@pytest.mark.parametrize("call, error, words", [
    (lambda: PowerMeanPool(D)(torch.randn(4, D + 1), torch.tensor([0, 4])), ValueError, "channels"),
    (lambda: PowerMeanPool(D, p=0.0), ValueError, "`p`"),
    (lambda: CommutativeMonoid(0), ValueError, "channels"),
    (lambda: CommutativeMonoid(D)(torch.randn(4, D), torch.tensor([0, 5])), ValueError, "ptr"),
    (lambda: RecurrentAggregation(D)(torch.randn(4, D).long(), torch.tensor([0, 4])), TypeError, "src"),
    (lambda: generalized_norm_pool(-torch.rand(3, D), torch.tensor([0, 3]), torch.ones(D), torch.ones(D)),
     ValueError, "non-negative"),
    (lambda: generalized_norm_pool(torch.rand(3, D), torch.tensor([0, 3]), torch.zeros(D), torch.ones(D)),
     ValueError, "`p`"),
    (lambda: to_padded(torch.randn(4, D), torch.tensor([0, 4]), length=2), ValueError, "length"),
    (lambda: order_within_segments(torch.rand(3), torch.tensor([0, 4])), ValueError, "key"),
    (lambda: make_aggregator("median", D), ValueError, "median"),
])
def test_bad_input_is_refused_with_a_clear_error(call, error, words):
    with pytest.raises(error, match=words):
        call()
