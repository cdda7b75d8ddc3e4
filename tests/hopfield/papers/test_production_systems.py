"""Neural Production Systems: the toy's rules, one rule on one slot per application, the matched
baseline, bad input."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.hopfield.papers import production_systems as nps
from course.metrics import parameter_count


def assert_close(actual, expected, tol=1e-5):
    """allclose with a message (torch.testing.assert_close costs seconds of imports on first use)."""
    assert actual.shape == expected.shape and torch.allclose(actual, expected, rtol=tol, atol=tol), \
        f"largest difference {(actual - expected).abs().max().item():.3g}"


def test_the_toy_follows_its_three_rules():
    slots, nxt, kinds = nps.transitions(50, 4, 0)
    x, x_next = slots[..., -1], nxt[..., -1]
    for kind, rule in ((0, lambda v: v + nps.STEP), (1, lambda v: v - nps.STEP), (2, lambda v: v / 2)):
        assert_close(x_next[kinds == kind], rule(x[kinds == kind]))
    assert torch.equal(slots[..., :nps.TYPES], nxt[..., :nps.TYPES])
    assert torch.equal(slots[..., :nps.TYPES].argmax(-1), kinds)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2 ** 16), objects=st.integers(1, 6), train=st.booleans())
def test_each_slot_gets_exactly_one_rule_its_own_proposal(seed, objects, train):
    torch.manual_seed(seed)
    model = nps.ProductionSystem()
    model.train(train)
    slots, _, _ = nps.transitions(5, objects, seed)
    out = model(slots)
    choice = model.last_choice  # [B, N]
    proposals = torch.stack([mlp(slots) for mlp in model.rule_mlps], dim=2)  # [B, N, R, D]
    index = choice[..., None, None].expand(-1, -1, 1, slots.shape[-1])
    expected = slots + proposals.gather(2, index)[:, :, 0]
    assert_close(out, expected)
    if not train:  # at test time the choice is the best-scoring rule of each slot
        assert torch.equal(choice, model.scores(slots).argmax(-1))


def test_gradients_reach_the_rule_scores_through_the_straight_through_choice():
    torch.manual_seed(0)
    model = nps.ProductionSystem()
    slots, targets, _ = nps.transitions(4, 3, 0)
    torch.nn.functional.mse_loss(model(slots), targets).backward()
    assert model.rule_embedding.grad.abs().sum() > 0 and model.query.weight.grad.abs().sum() > 0


def test_the_baseline_is_the_smallest_at_least_as_large():
    mlp, size = nps.build(False, 0), parameter_count(nps.build(True, 0))
    width = mlp.net[0].out_features
    assert parameter_count(mlp) >= size > parameter_count(nps.SlotMLP(width - 1))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="`slots`"):
        nps.ProductionSystem()(torch.zeros(2, 3, nps.SLOT_DIM + 1))
    with pytest.raises(ValueError, match="`slots`"):
        nps.SlotMLP(4)(torch.zeros(3, nps.SLOT_DIM))
    with pytest.raises(ValueError, match="`objects`"):
        nps.transitions(2, 0, 0)
