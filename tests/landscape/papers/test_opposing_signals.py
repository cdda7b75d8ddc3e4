"""The pieces of the opposing-signals experiment: the planted data, the GD run, and finding the groups."""
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch.func import grad

from course.landscape import models
from course.landscape.papers import opposing_signals as osig


def test_sky_data_plants_one_large_feature_under_two_labels():
    x, labels, group = osig.sky_data(0, bulk=30, per_group=4)
    assert x.shape == (38, osig.FEATURES) and labels.shape == group.shape == (38,)
    assert (group[:30] == 0).all() and (labels[group == 1] == 0).all() and (labels[group == 2] == 1).all()
    sky = x[:, -1]
    assert sky[group > 0].min() > osig.SKY - 2 and sky[group == 0].abs().max() < 2.5


def test_gd_run_is_plain_full_batch_gradient_descent():
    x, labels, _ = osig.sky_data(0, bulk=20, per_group=2)
    per_example, thetas, at = osig.gd_run(x, labels, eta=0.3, steps=6, every=3, seed=1)
    assert per_example.shape == (6, 24) and thetas.shape[0] == 3 and at.tolist() == [0, 3, 6]
    theta = models.flatten(models.mlp(osig.WIDTHS, seed=1))
    assert torch.equal(theta, thetas[0])
    step = grad(lambda t: models.mlp_loss(t, x, labels, osig.WIDTHS))
    for _ in range(3):
        theta = theta - 0.3 * step(theta)
    torch.testing.assert_close(thetas[1], theta, rtol=1e-5, atol=1e-6)
    assert per_example[0].mean() == pytest.approx(float(models.mlp_loss(thetas[0], x, labels, osig.WIDTHS)))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000))
def test_opposing_groups_finds_two_groups_oscillating_in_antiphase(seed):
    g = torch.Generator().manual_seed(seed)
    T, N = 40, 30
    per_example = 0.3 + 0.01 * torch.rand(T, N, generator=g)  # a quiet bulk
    members = torch.randperm(N, generator=g)[:8]
    swing = torch.sin(torch.arange(T) * 2.1) * (1 + torch.rand(T, generator=g))
    per_example[:, members[:4]] += 0.5 + 0.4 * swing[:, None]
    per_example[:, members[4:]] += 0.5 - 0.4 * swing[:, None]
    first, second = osig.opposing_groups(per_example, k=8)
    found = {frozenset(first.tolist()), frozenset(second.tolist())}
    assert found == {frozenset(members[:4].tolist()), frozenset(members[4:].tolist())}


def test_loss_movement_and_steps_to_edge():
    per_example = torch.tensor([[1.0, 0.0], [0.0, 0.5], [1.0, 0.5]])
    assert osig.loss_movement(per_example).tolist() == [2.0, 0.5]
    with pytest.raises(ValueError, match="needs T >= 2 steps"):
        osig.loss_movement(per_example[:1])
    trace, at = torch.tensor([1.0, 3.0, 4.6, 5.1]), torch.tensor([0, 10, 20, 30])
    assert osig.steps_to_edge(trace, at, eta=0.4, steps=300) == 20  # 0.9 * 2 / 0.4 = 4.5
    assert osig.steps_to_edge(trace, at, eta=0.1, steps=300) == 300
    with pytest.raises(ValueError, match="`k` must be an int in"):
        osig.opposing_groups(per_example, k=5)
