"""Properties of MoE dispatch and combine (hypothesis), and clear errors on bad input, per backend."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course import moe, registry

BACKENDS = [impl for impl in registry.get("moe.dispatch").impls if impl.availability("cpu")[0]]
IDS = [impl.backend for impl in BACKENDS]


@st.composite
def routings(draw):
    """Random router choices: T tokens, E experts, k distinct experts per token, a capacity."""
    E = draw(st.integers(1, 6))
    k = draw(st.integers(1, E))
    T = draw(st.integers(0, 40))
    capacity = draw(st.one_of(st.none(), st.integers(1, max(1, T))))
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(T, E, generator=g)
    if draw(st.booleans()) and E > k:
        logits[:, draw(st.integers(0, E - 1))] = -1e4  # an expert nobody picks
    top, expert_index = logits.topk(k, dim=-1)
    x = torch.randn(T, draw(st.integers(1, 9)), generator=g)
    return x, expert_index, E, capacity, top.softmax(-1)


def kept_in_priority_order(expert_index, E, capacity):
    """The assignments a capacity keeps, by GShard's rule, computed the plain way."""
    T, k = expert_index.shape
    seen = [0] * E
    kept = torch.zeros(T, k, dtype=torch.bool)
    for j in range(k):
        for t in range(T):
            e = expert_index[t, j].item()
            if capacity is None or seen[e] < capacity:
                kept[t, j] = True
                seen[e] += 1
    return kept


@pytest.mark.parametrize("impl", BACKENDS, ids=IDS)
@settings(max_examples=25, deadline=None)
@given(routing=routings())
def test_dispatch_invariants(impl, routing):
    x, expert_index, E, capacity, _ = routing
    out = impl.load()(x, expert_index, E, capacity)
    kept = out.slot >= 0
    T, k = expert_index.shape
    # each token goes to exactly k experts unless capacity drops it, and drops follow the priority rule
    assert torch.equal(kept, kept_in_priority_order(expert_index, E, capacity))
    if capacity is None:
        assert kept.sum(1).eq(k).all()
    # slots enumerate the grouped rows exactly once; counts and offsets describe expert blocks
    assert torch.equal(out.slot[kept].sort().values, torch.arange(out.x.shape[0]))
    assert out.counts.sum() == out.x.shape[0] and out.offsets[-1] == out.x.shape[0]
    routed = torch.bincount(expert_index.flatten(), minlength=E)
    assert torch.equal(out.counts, routed if capacity is None else routed.clamp(max=capacity))
    # each row holds its token, inside the block of the expert it was routed to
    token = torch.arange(T).unsqueeze(1).expand(T, k)
    assert torch.equal(out.x[out.slot[kept]], x[token[kept]])
    block = torch.bucketize(out.slot[kept], out.offsets[1:], right=True)
    assert torch.equal(block, expert_index[kept])


@pytest.mark.parametrize("impl", BACKENDS, ids=IDS)
@settings(max_examples=25, deadline=None)
@given(routing=routings())
def test_combine_after_dispatch_with_identity_experts_is_the_gate_weighted_sum(impl, routing):
    x, expert_index, E, capacity, gates = routing
    combine = registry.get("moe.combine").impl(impl.backend).load()
    out = impl.load()(x, expert_index, E, capacity)
    y = combine(out.x, out.slot, gates)
    expected = x * (gates * (out.slot >= 0)).sum(1, keepdim=True)
    torch.testing.assert_close(y, expected)
    if capacity is None:  # nothing dropped: the gates sum to one, so identity experts return x
        torch.testing.assert_close(y, x)


@pytest.mark.parametrize("impl", BACKENDS, ids=IDS)
def test_edge_cases(impl):
    dispatch = impl.load()
    x = torch.randn(1, 4)
    one = dispatch(x, torch.tensor([[2]]), 3)  # T = 1
    assert one.counts.tolist() == [0, 0, 1] and one.slot.tolist() == [[0]]
    single = dispatch(torch.randn(5, 4), torch.zeros(5, 1, dtype=torch.long), 1, 2)  # one expert
    assert single.counts.tolist() == [2] and single.slot.flatten().tolist() == [0, 1, -1, -1, -1]
    empty = dispatch(torch.randn(6, 4), torch.tensor([[1], [2], [1], [2], [1], [1]]), 3)
    assert empty.counts.tolist() == [0, 4, 2] and empty.offsets.tolist() == [0, 0, 4, 6]


def call(impl, **kwargs):
    defaults = dict(x=torch.randn(4, 3), expert_index=torch.tensor([[0, 1]] * 4), num_experts=3,
                    capacity=None)
    return impl.load()(**{**defaults, **kwargs})


@pytest.mark.parametrize("impl", BACKENDS, ids=IDS)
@pytest.mark.parametrize("kwargs,error,words", [
    (dict(expert_index=torch.tensor([[0, 1, 2, 0]] * 4)), ValueError, ["k = expert_index.shape[1]", "[1, 3]", "4"]),
    (dict(capacity=0), ValueError, ["`capacity`", "an int in [1, inf]", "got 0"]),
    (dict(capacity=-3), ValueError, ["`capacity`", "-3"]),
    (dict(capacity=2.5), TypeError, ["`capacity`", "an int or None", "2.5"]),
    (dict(x=torch.randn(4, 3, 1)), ValueError, ["`x`", "2-D", "(4, 3, 1)"]),
    (dict(expert_index=torch.tensor([0, 1, 0, 1])), ValueError, ["`expert_index`", "2-D", "1-D"]),
    (dict(expert_index=torch.zeros(4, 2)), TypeError, ["`expert_index`", "integer", "float32"]),
    (dict(x=torch.ones(4, 3, dtype=torch.long)), TypeError, ["`x`", "floating-point", "int64"]),
    (dict(expert_index=torch.tensor([[0, 3]] * 4)), ValueError, ["`expert_index`", "[0, 3)", "3"]),
    (dict(expert_index=torch.tensor([[0, 1]] * 5)), ValueError, ["`expert_index`", "T = x.shape[0]", "(5, 2)"]),
    (dict(num_experts=0), ValueError, ["`num_experts`", "0"]),
])
def test_dispatch_errors_name_the_argument(impl, kwargs, error, words):
    with pytest.raises(error) as raised:
        call(impl, **kwargs)
    message = str(raised.value)
    assert message.startswith("moe.dispatch:")
    assert all(word in message for word in words), message


@pytest.mark.parametrize("impl", [i for i in registry.get("moe.combine").impls
                                  if i.availability("cpu")[0]], ids=lambda i: i.backend)
def test_combine_errors_name_the_argument(impl):
    combine = impl.load()
    y, slot, gates = torch.randn(3, 2), torch.tensor([[0, 1], [2, -1]]), torch.rand(2, 2)
    combine(y, slot, gates)
    with pytest.raises(ValueError, match=r"`gates` must be of shape \[T, k\] = slot.shape"):
        combine(y, slot, torch.rand(2, 3))
    with pytest.raises(ValueError, match=r"`slot` must hold rows of `y` in \[0, S\) = \[0, 3\)"):
        combine(y, torch.tensor([[0, 1], [3, -1]]), gates)
    with pytest.raises(ValueError, match="name every row of `y` exactly once"):
        combine(y, torch.tensor([[0, 1], [1, 2]]), gates)
    with pytest.raises(TypeError, match="`gates` must have the dtype of `y`"):
        combine(y, slot, gates.double())


def test_gating_errors_and_nan_logits():
    with pytest.raises(ValueError, match=r"moe.keep_top_k: `logits` must be finite everywhere; got 1 NaN"):
        moe.keep_top_k(torch.tensor([[0.0, float("nan")]]), 1)
    with pytest.raises(ValueError, match=r"`k` must be an int in \[1, 2\]; got 3"):
        moe.keep_top_k(torch.zeros(4, 2), 3)
    with pytest.raises(ValueError, match=r"`w_gate` must be of shape \[D, E\] with D = x.shape\[1\]"):
        moe.noisy_top_k_gating(torch.zeros(4, 3), torch.zeros(5, 2), None, 1)
    with pytest.raises(ValueError, match="`x` must be finite everywhere"):
        moe.noisy_top_k_gating(torch.full((2, 3), float("nan")), torch.zeros(3, 2), None, 1)
    with pytest.raises(ValueError, match="`capacity_factor` must be a finite number > 0"):
        moe.expert_capacity(8, 2, 1, 0.0)
    with pytest.raises(TypeError, match=r"`w_gate` must have the dtype of `x` \(torch.float64\); got "
                                        "torch.float32"):
        moe.noisy_top_k_gating(torch.zeros(4, 3, dtype=torch.float64), torch.zeros(3, 2), None, 1)


def test_expert_capacity_is_exact_switch_eq_3():
    """ceil(factor T k / E) with the factor read as the decimal it prints as, over a grid."""
    from fractions import Fraction
    import math

    assert moe.expert_capacity(25, 5, 2, 1.1) == 11  # 1.1 * 25 * 2 / 5 = 11.000000000000002 in floats
    for T in range(1, 41):
        for E in range(1, 9):
            for k in range(1, E + 1):
                for factor in (0.3, 0.5, 0.7, 1.0, 1.1, 1.2, 1.25, 1.5, 2.0, 3):
                    exact = max(1, math.ceil(Fraction(str(factor)) * T * k / E))
                    assert moe.expert_capacity(T, E, k, factor) == exact, (T, E, k, factor)
    assert moe.expert_capacity(10, 4, 2, Fraction(3, 2)) == 8


@pytest.mark.parametrize("args,error,words", [
    ((0, 4, 2, 1.0), ValueError, "`num_tokens` must be an int in [1, inf]; got 0"),
    ((-5, 4, 2, 1.0), ValueError, "`num_tokens`"),
    ((8.0, 4, 2, 1.0), TypeError, "`num_tokens` must be an int; got 8.0"),
    ((8, 0, 1, 1.0), ValueError, "`num_experts`"),
    ((8, 4, 0, 1.0), ValueError, "`k` must be an int in [1, 4]"),
    ((8, 4, 5, 1.0), ValueError, "`k` must be an int in [1, 4]; got 5"),
    ((8, 4, True, 1.0), TypeError, "`k`"),
    ((8, 4, 2, float("nan")), ValueError, "`capacity_factor` must be a finite number > 0; got nan"),
    ((8, 4, 2, float("inf")), ValueError, "`capacity_factor`"),
    ((8, 4, 2, "1.0"), ValueError, "`capacity_factor`"),
])
def test_expert_capacity_names_a_bad_argument(args, error, words):
    with pytest.raises(error) as raised:
        moe.expert_capacity(*args)
    assert words in str(raised.value)


@pytest.mark.parametrize("kwargs,error,words", [
    (dict(expert_index=torch.tensor([[0, 5], [1, 2]])), ValueError,
     "`expert_index` must be in [0, num_experts) = [0, 4)"),
    (dict(capacity=-1), ValueError, "`capacity` must be an int in [1, inf]; got -1"),
    (dict(expert_index=torch.tensor([[0.0, 1.0]])), TypeError, "`expert_index` must be an integer tensor"),
    (dict(num_experts=1), ValueError, "`k = expert_index.shape[1]` must be an int in [1, 1]"),
])
def test_route_slots_validates_what_it_is_given(kwargs, error, words):
    """route_slots is public: an index >= E used to give 6 counts for E = 4, capacity -1 negative ones."""
    args = {**dict(expert_index=torch.tensor([[0, 3], [1, 2]]), num_experts=4, capacity=None), **kwargs}
    with pytest.raises(error) as raised:
        moe.route_slots(**args)
    assert str(raised.value).startswith("moe.route_slots:") and words in str(raised.value)


def test_token_loop_is_linear_in_the_number_of_experts():
    import time

    start = time.perf_counter()
    out = moe.dispatch_token_loop(torch.randn(8, 2), torch.tensor([[999_999], [3]] * 4), 10 ** 6)
    assert time.perf_counter() - start < 5.0  # quadratic offsets took over 120 s
    assert out.counts.sum() == 8 and out.slot[:, 0].tolist() == [4, 0, 5, 1, 6, 2, 7, 3]


@pytest.mark.parametrize("backend,limit", [("triton", 8192), ("cuda", 12288)])
def test_kernels_name_their_expert_limit(backend, limit):
    """Past the routing kernels' one-hot (Triton) or shared-memory histogram (CUDA), a clear error."""
    impl = registry.get("moe.dispatch").impl(backend)
    if backend == "triton" and not impl.availability("cpu")[0]:
        pytest.skip(impl.availability("cpu")[1])
    x, index = torch.randn(4, 3), torch.tensor([[limit], [0], [1], [2]])
    if backend == "triton":
        with pytest.raises(ValueError, match=rf"\(triton backend\): `num_experts` must be an int in "
                                             rf"\[1, {limit}\]; got {limit + 1}"):
            impl.load()(x, index, limit + 1)
        assert impl.load()(x, index.clamp(max=limit - 1), limit).counts.sum() == 4  # at the limit: runs
    from course.kernels.moe import cuda_moe

    assert cuda_moe.MAX_EXPERTS == 12288
    assert moe.dispatch(x, index, limit + 1).counts.sum() == 4  # the reference has no such limit
