"""Router-gradient estimators (SparseMixer, straight-through, Switch) against the exact gradient."""
import pytest
import torch

from course.moe.papers import sparsemixer


def test_exact_router_gradient_matches_autograd_of_the_enumerated_expectation():
    problem, w = sparsemixer.routing_problem(seed=7)
    w = w.clone().requires_grad_()
    (autograd,) = torch.autograd.grad(sparsemixer.expected_loss(w, problem), w)
    torch.testing.assert_close(sparsemixer.exact_router_gradient(w.detach(), problem), autograd,
                               atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("estimator", sparsemixer.ESTIMATORS)
def test_monte_carlo_estimates_converge_to_the_enumerated_expectation(estimator):
    problem, w = sparsemixer.routing_problem(seed=8)
    expected = sparsemixer.expected_estimate(estimator, w, problem)
    sampled = sparsemixer.sampled_estimate(estimator, w, problem, 4000,
                                           torch.Generator().manual_seed(9))
    assert sparsemixer.relative_bias(sampled, expected) < 0.06


def test_released_sparsemixer_differs_from_the_midpoint_only_at_the_argmax():
    problem, w = sparsemixer.routing_problem(seed=10)
    released = sparsemixer.expected_estimate("sparsemixer", w, problem)
    midpoint = sparsemixer.expected_estimate("sparsemixer_midpoint", w, problem)
    sampled = sparsemixer.sampled_estimate("sparsemixer", w, problem, 4000,
                                           torch.Generator().manual_seed(11))
    to_released = sparsemixer.relative_bias(sampled, released)
    assert to_released < 0.5 * sparsemixer.relative_bias(sampled, midpoint)


def test_estimator_surrogates_forward_the_sampled_expert_and_scale_gradients():
    problem, w = sparsemixer.routing_problem(seed=12)
    choice = torch.randint(4, (problem.x.shape[0],), generator=torch.Generator().manual_seed(13))
    ones = torch.ones(problem.x.shape[0])
    switch = sparsemixer.switch_surrogate(w, problem, choice)
    # straight-through's forward is the sampled expert's output, pi_D f_D
    torch.testing.assert_close(sparsemixer.straight_through_surrogate(w, problem, choice), switch)
    torch.testing.assert_close(sparsemixer.sparsemixer_surrogate(w, problem, choice, ones), switch)
    # with omega = 1 SparseMixer doubles the gate-only gradient
    torch.testing.assert_close(sparsemixer.router_estimate("sparsemixer", w, problem, choice, ones),
                               2 * sparsemixer.router_estimate("switch", w, problem, choice, ones))
    with pytest.raises(ValueError, match="estimator"):
        sparsemixer.expected_estimate("reinforce", w, problem)
    with pytest.raises(ValueError, match="w_router"):
        sparsemixer.exact_router_gradient(torch.randn(3, 4), problem)
