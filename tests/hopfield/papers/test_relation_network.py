"""Relation Networks: eq. (2) computed pair by pair, invariance to the order of the objects, the
matched baseline, bad input."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.hopfield.papers import relation_network as rn
from course.hopfield.papers import sort_of_clevr_toy as toy
from course.metrics import parameter_count


def assert_close(actual, expected, tol=1e-5):
    """allclose with a message (torch.testing.assert_close costs seconds of imports on first use)."""
    assert actual.shape == expected.shape and torch.allclose(actual, expected, rtol=tol, atol=tol), \
        f"largest difference {(actual - expected).abs().max().item():.3g}"


MODEL = rn.build(True, 0)


def test_the_rn_is_g_summed_over_all_ordered_pairs_then_f():
    data = toy.dataset(3, 1)
    pairs = rn.object_pairs(data.objects, data.questions)  # [B, N, N, 2 D_o + D_q]
    expected = MODEL.f_phi(MODEL.g_theta(pairs).sum(dim=(1, 2)))
    assert_close(MODEL(data.objects, data.questions), expected)
    i, j = 1, 3
    assert_close(pairs[0, i, j], torch.cat([data.objects[0, i], data.objects[0, j],
                                                          data.questions[0]]))


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2 ** 16))
def test_the_rn_is_invariant_to_the_order_of_the_objects(seed):
    data = toy.dataset(4, seed)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(toy.OBJECTS, generator=g)
    with torch.no_grad():
        assert_close(MODEL(data.objects[:, order], data.questions),
                                   MODEL(data.objects, data.questions))
    # the answers do not depend on the order either
    kinds = data.questions[:, len(toy.COLOURS):].argmax(1)
    colours = data.questions[:, :len(toy.COLOURS)].argmax(1)
    assert torch.equal(toy.answer(data.objects[:, order], colours, kinds), data.answers)


def test_the_mlp_baseline_is_the_smallest_at_least_as_large():
    mlp, rn_size = rn.build(False, 0), parameter_count(MODEL)
    width = mlp.net[0].out_features
    sizes = (toy.OBJECTS, toy.OBJECT_DIM, toy.QUESTION_DIM, len(toy.ANSWERS))
    assert parameter_count(mlp) >= rn_size > parameter_count(rn.ObjectMLP(*sizes, width - 1))


def test_bad_input_is_refused():
    data = toy.dataset(2, 0)
    with pytest.raises(ValueError, match="`question`"):
        MODEL(data.objects, data.questions[:1])
    with pytest.raises(ValueError, match="`objects`"):
        MODEL(data.objects[0], data.questions)
    with pytest.raises(ValueError, match="`objects`"):
        MODEL(data.objects[..., :-1], data.questions)
    with pytest.raises(ValueError, match="`objects`"):
        rn.build(False, 0)(data.objects[:, :-1], data.questions)
    with pytest.raises(TypeError, match="`question`"):
        MODEL(data.objects, data.questions.long())
    with pytest.raises(ValueError, match="`seed`"):
        rn.relation_experiment(-1)
