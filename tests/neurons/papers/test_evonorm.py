"""Liu et al. 2020 (EvoNorms): B0 and S0 against their formulas written out with torch's own statistics,
S0's batch independence, B0's batch statistics and moving average, the classifiers' matched sizes, and
bad input."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.metrics import parameter_count
from course.neurons.papers import evonorm


def vectors(c: int, g: torch.Generator):
    return (torch.rand(c, generator=g, dtype=torch.float64) + 0.5 for _ in range(3))


@settings(max_examples=10, deadline=None)
@given(b=st.integers(1, 4), groups=st.sampled_from([1, 2, 3]), per_group=st.integers(1, 3),
       hw=st.integers(1, 4), seed=st.integers(0, 99))
def test_s0_is_x_sigmoid_v1_x_over_the_group_std(b, groups, per_group, hw, seed):
    g = torch.Generator().manual_seed(seed)
    c = groups * per_group
    x = torch.randn(b, c, hw, hw, generator=g, dtype=torch.float64)
    v1, gamma, beta = vectors(c, g)
    # GroupNorm without its mean: x / std equals GroupNorm(x) + mean / std; write the std out instead.
    grouped = x.reshape(b, groups, -1)
    std = (grouped.var(-1, unbiased=False) + evonorm.EPS).sqrt().repeat_interleave(per_group, 1)
    expected = x * torch.sigmoid(v1[:, None, None] * x) / std[:, :, None, None]
    expected = expected * gamma[:, None, None] + beta[:, None, None]
    torch.testing.assert_close(evonorm.evonorm_s0(x, v1, gamma, beta, groups), expected)


def test_s0_output_of_a_sample_does_not_depend_on_the_rest_of_the_batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 8, 3, 3, generator=g)
    v1, gamma, beta = (t.float() for t in vectors(8, g))
    alone = torch.cat([evonorm.evonorm_s0(x[i:i + 1], v1, gamma, beta, 4) for i in range(5)])
    torch.testing.assert_close(evonorm.evonorm_s0(x, v1, gamma, beta, 4), alone)
    assert evonorm.batch_dependence(evonorm.EvoNorm(16, "s0"), 0) == 0.0
    assert evonorm.batch_dependence(evonorm.EvoNorm(16, "b0"), 0) > 0.1


def test_b0_uses_the_batch_variance_and_moves_its_running_average():
    g = torch.Generator().manual_seed(1)
    x = 2 * torch.randn(6, 4, 3, 3, generator=g, dtype=torch.float64) + 1
    v1, gamma, beta = vectors(4, g)
    running = torch.ones(4, dtype=torch.float64)
    y = evonorm.evonorm_b0(x, v1, gamma, beta, running, training=True, momentum=0.25)
    batch_var = x.permute(1, 0, 2, 3).reshape(4, -1).var(-1, unbiased=False)  # BatchNorm's statistic
    instance_std = (x.var((2, 3), unbiased=False, keepdim=True) + evonorm.EPS).sqrt()
    c = lambda t: t[None, :, None, None]  # noqa: E731
    denominator = torch.maximum(c((batch_var + evonorm.EPS).sqrt()), c(v1) * x + instance_std)
    torch.testing.assert_close(y, x / denominator * c(gamma) + c(beta))
    torch.testing.assert_close(running, 0.75 + 0.25 * batch_var)
    # in evaluation the running variance stands for the batch's, so each sample is on its own
    y_eval = evonorm.evonorm_b0(x, v1, gamma, beta, running, training=False)
    alone = torch.cat([evonorm.evonorm_b0(x[i:i + 1], v1, gamma, beta, running, False) for i in range(6)])
    torch.testing.assert_close(y_eval, alone)


def test_an_mlp_input_is_read_as_one_pixel():
    x = torch.randn(7, 4)
    layer = evonorm.EvoNorm(4, "s0", groups=2)
    torch.testing.assert_close(layer(x), layer(x[:, :, None, None])[:, :, 0, 0])


def test_the_three_classifiers_differ_only_in_their_norm_layers():
    sizes = {k: parameter_count(evonorm.classifier(k)) for k in evonorm.LAYERS}
    assert sizes["b0"] == sizes["s0"] == sizes["bn_relu"] + sum(evonorm.CHANNELS)  # v1 per channel
    images = torch.randn(3, 8, 8)
    assert evonorm.classifier("s0")(images).shape == (3, 4)


def test_bad_input_is_refused_with_its_name():
    v = torch.ones(4)
    with pytest.raises(ValueError, match="`x`"):
        evonorm.evonorm_s0(torch.ones(2, 4, 3), v, v, v, 2)
    with pytest.raises(ValueError, match="`gamma`"):
        evonorm.evonorm_s0(torch.ones(2, 4), v, torch.ones(3), v, 2)
    with pytest.raises(ValueError, match="groups"):
        evonorm.evonorm_s0(torch.ones(2, 4), v, v, v, 3)
    with pytest.raises(ValueError, match="`x`"):
        evonorm.evonorm_b0(torch.tensor([[float("nan")] * 4] * 2), v, v, v)
    with pytest.raises(ValueError, match="running_var"):
        evonorm.evonorm_b0(torch.ones(2, 4), v, v, v, None, training=False)
    with pytest.raises(ValueError, match="at least 2"):
        evonorm.evonorm_b0(torch.ones(1, 4), v, v, v)
    with pytest.raises(TypeError, match="`x`"):
        evonorm.evonorm_s0(torch.ones(2, 4, dtype=torch.long), v, v, v, 2)
    with pytest.raises(ValueError, match="kind"):
        evonorm.EvoNorm(4, "b1")


def test_b0_and_s0_are_trees_of_the_search_space():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 8, 3, 3, generator=g, dtype=torch.float64)
    v1, gamma, beta = vectors(8, g)
    zeros, ones = torch.zeros(8, dtype=torch.float64), torch.ones(8, dtype=torch.float64)
    # the protected Sqrt and Div add eps where the closed forms do not: equal to about eps
    torch.testing.assert_close(evonorm.evaluate(evonorm.S0_TREE, x, zeros, v1),
                               evonorm.evonorm_s0(x, v1, ones, zeros), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(evonorm.evaluate(evonorm.B0_TREE, x, zeros, v1),
                               evonorm.evonorm_b0(x, v1, ones, zeros), atol=1e-4, rtol=1e-4)
    layer = evonorm.ExpressionLayer(evonorm.S0_TREE, 8).double()
    with torch.no_grad():
        layer.v1.copy_(v1), layer.gamma.copy_(gamma), layer.beta.copy_(beta)
        torch.testing.assert_close(layer(x), evonorm.evonorm_s0(x, v1, gamma, beta), atol=1e-4, rtol=1e-4)


def test_the_search_mutates_valid_trees_and_rejects_layers_that_ignore_x():
    import random

    rng = random.Random(0)
    x = torch.randn(4, 8, 2, 2)
    for _ in range(30):
        tree = evonorm.mutate(rng, evonorm.random_tree(rng, 3))
        assert evonorm.evaluate(tree, x, torch.zeros(8), torch.ones(8)).dim() == 4
    assert evonorm.fitness(("sigmoid", "v1"), 0) == 0.0  # rejected before any training
    history = evonorm.evolve(0, population=2, cycles=2, tournament=1, steps=2)
    assert len(history) == 4 and all(0 <= f <= 1 for _, f in history)
