"""CMoE's carving: the assignment solver, the partition of neurons, the recovered dense layer."""
import itertools

import pytest
import torch

from course.moe.papers import cmoe


@pytest.mark.parametrize("seed", range(4))
def test_linear_assignment_is_optimal(seed):
    cost = torch.rand(6, 6, generator=torch.Generator().manual_seed(seed))
    col = cmoe.linear_assignment(cost.numpy())
    assert sorted(col.tolist()) == list(range(6))
    best = min(sum(cost[i, p[i]].item() for i in range(6))
               for p in itertools.permutations(range(6)))
    assert cost[torch.arange(6), col].sum().item() == pytest.approx(best, abs=1e-6)


def small_dense_model(hidden=32, seed=0):
    x, label = cmoe.sphere_blob_classification(256, blobs=16, classes=4, seed=seed)
    return cmoe.train_dense_mlp(x, label, hidden=hidden, steps=30, seed=seed), x


def test_carving_partitions_neurons_and_recovers_dense():
    ffn, x = small_dense_model()
    h = cmoe.hidden_activations(ffn, x)
    markers = cmoe.activation_markers(h, 4)
    assert torch.equal(markers.sum(1), torch.full((len(x),), 4.0))
    for carving in (cmoe.carve_experts(markers, 8, 2), cmoe.random_carving(markers, 8, 2)):
        assert carving.shared.shape == (8,) and carving.routed.shape == (6, 4)
        every = torch.cat([carving.shared, carving.routed.flatten()])
        assert torch.equal(every.sort().values, torch.arange(32))  # each neuron exactly once
        for group, rep in zip(carving.routed, carving.representative):
            assert rep in group
        dense = cmoe.dense_forward(ffn, x)
        assert torch.allclose(cmoe.carved_forward(ffn, carving, x, 6), dense, atol=1e-5)
        assert not torch.allclose(cmoe.carved_forward(ffn, carving, x, 1), dense, atol=1e-3)
    carving = cmoe.carve_experts(markers, 8, 2)
    rates = markers.mean(0)
    assert rates[carving.shared].min() >= rates[carving.routed.flatten()].max()


def test_balanced_clusters_have_equal_sizes():
    points = torch.rand(12, 5, generator=torch.Generator().manual_seed(0))
    cluster = cmoe.balanced_clusters(points, points[:3], 4)
    assert torch.equal(torch.bincount(cluster, minlength=3), torch.tensor([4, 4, 4]))


def test_cmoe_bad_arguments():
    markers = torch.zeros(10, 30)
    with pytest.raises(ValueError, match="num_experts"):
        cmoe.carve_experts(markers, 8, 1)
    with pytest.raises(ValueError, match="num_shared"):
        cmoe.carve_experts(markers, 6, 6)
    with pytest.raises(ValueError, match="k_act"):
        cmoe.activation_markers(torch.rand(4, 8), 9)
