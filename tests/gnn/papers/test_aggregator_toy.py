"""The aggregator study's pieces: the stars and their targets, the centres' segments, the model."""
import pytest
import torch

from course.gnn.aggregators import AGGREGATORS
from course.gnn.papers import aggregator_toy as study


def test_star_targets_are_the_norm_the_second_largest_and_the_value_at_the_second_key():
    key = torch.tensor([0.9, 0.1, 0.5, 0.3])
    value = torch.tensor([0.2, 0.7, 0.4, 0.6])
    norm, second, at_second_key = study.star_targets(key, value).tolist()
    assert norm == pytest.approx(value.norm().item())
    assert second == pytest.approx(0.6) and at_second_key == pytest.approx(0.6)  # key 0.3 -> 0.6
    assert study.star_targets(key, torch.tensor([0.2, 0.7, 0.7, 0.1]))[1].item() == pytest.approx(0.7)


def test_stars_number_their_leaves_in_key_order_and_point_them_at_the_centre():
    graph, centres, y = study.stars([2, 5, 3], seed=1)
    assert graph.num_nodes == 13 and centres.tolist() == [0, 3, 9] and y.shape == (3, 3)
    assert (graph.destination[:, None] == centres).any(1).all()  # every edge ends at a centre
    ptr = study.centre_segments(graph, centres)
    assert ptr.tolist() == [0, 2, 7, 10]
    for s in range(3):  # the CSR reads each star's leaves in key order, and the targets match
        leaves = graph.x[graph.csr.index[ptr[s]:ptr[s + 1]]]
        assert torch.all(leaves[1:, 0] >= leaves[:-1, 0])
        torch.testing.assert_close(study.star_targets(leaves[:, 0], leaves[:, 1]), y[s])


@pytest.mark.parametrize("name", AGGREGATORS)
def test_every_model_maps_each_star_to_one_output_per_task(name):
    graph, centres, _ = study.stars([2, 8, 4], seed=0)
    out = study.StarModel(name, hidden=4)(graph, centres)
    assert out.shape == (3, len(study.TASKS)) and torch.isfinite(out).all()


def test_a_few_training_steps_lower_the_loss_and_errors_are_relative():
    data = study.stars(study.train_sizes(32, 0), seed=0)
    before = study.error(study.StarModel("gnp", outputs=1), data, "norm")
    model = study.train_star_model("gnp", data, "norm", steps=30, lr=0.05)
    assert study.error(model, data, "norm") < before


def test_the_test_sizes_are_larger_than_every_training_size():
    graph, centres, _ = study.extrapolation_data(2, seed=0)
    sizes = study.centre_segments(graph, centres).diff()
    assert sizes.tolist() == [16, 16, 32, 32, 64, 64] and min(study.TEST_SIZES) > study.TRAIN_SIZES[1]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="at least 2 leaves"):
        study.stars([3, 1])
    with pytest.raises(ValueError, match="task"):
        study.train_star_model("sum", study.stars([2, 3]), "third_largest", steps=1)
