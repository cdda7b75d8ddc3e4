"""MLPs as one flat parameter vector: the layout, the functional loss, and their bad input."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from course.landscape import models

widths_strategy = st.lists(st.integers(1, 9), min_size=2, max_size=5).map(tuple)


@settings(max_examples=25, deadline=None)
@given(widths=widths_strategy, seed=st.integers(0, 10))
def test_the_functional_form_is_the_module(widths, seed):
    model = models.mlp(widths, seed=seed)
    theta = models.flatten(model)
    assert theta.numel() == models.parameter_count(widths) == sum(p.numel() for p in model.parameters())
    assert models.widths_of(model) == widths
    x = torch.randn(7, widths[0], generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(models.mlp_logits(theta, x, widths), model(x))
    labels = torch.arange(7) % widths[-1]
    torch.testing.assert_close(models.mlp_loss(theta, x, labels, widths), F.cross_entropy(model(x), labels))


def test_load_writes_theta_and_unflatten_cuts_views_with_a_batch():
    widths = (3, 5, 2)
    model = models.mlp(widths, seed=0)
    theta = torch.arange(models.parameter_count(widths), dtype=torch.float32)
    assert torch.equal(models.flatten(models.load(model, theta)), theta)
    (W1, b1), (W2, b2) = models.unflatten(torch.stack([theta, -theta]), widths)
    assert W1.shape == (2, 5, 3) and b1.shape == (2, 5) and W2.shape == (2, 2, 5) and b2.shape == (2, 2)
    assert torch.equal(W1[0], model[0].weight.detach()) and torch.equal(b2[1], -model[2].bias.detach())


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="`widths` must be a tuple"):
        models.mlp((4,))
    with pytest.raises(ValueError, match=r"widths\[1\]"):
        models.mlp((4, 0, 2))
    with pytest.raises(ValueError, match="P = 16 parameters"):
        models.unflatten(torch.zeros(15), (3, 3, 1))
    with pytest.raises(ValueError, match="`theta` must have the model's 16 parameters"):
        models.load(models.mlp((3, 3, 1)), torch.zeros(5))


def test_load_copies_so_training_the_model_leaves_theta_alone():
    widths = (3, 5, 2)
    theta = torch.zeros(models.parameter_count(widths))
    model = models.load(models.mlp(widths), theta)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert torch.equal(theta, torch.zeros_like(theta))
