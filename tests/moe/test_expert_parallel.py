"""Expert parallelism over 2 local gloo processes against the single-process MoE layer, and its
regrouping helpers without processes."""
import pytest
import torch

from course import moe
from course.moe import expert_parallel as parallel
from course.moe.papers import deepspeed_ted

W, T, D, E, K = 2, 64, 16, 4, 2


def expected_bytes(expert_index, world_size, num_experts, d_model):
    """What each rank must send, counted token by token from the single-process routing."""
    shard = [r for r, n in enumerate(len(s) for s in torch.arange(len(expert_index))
                                     .tensor_split(world_size)) for _ in range(n)]
    dispatch, back = [0] * world_size, [0] * world_size
    for t, experts in enumerate(expert_index.tolist()):
        for e in experts:
            owner = e // (num_experts // world_size)
            if owner != shard[t]:
                dispatch[shard[t]] += d_model * 4
                back[owner] += d_model * 4
    counts = (world_size - 1) * (num_experts // world_size) * 8
    return [parallel.AllToAllBytes(counts, d, b) for d, b in zip(dispatch, back)]


@pytest.fixture(scope="module")
def runs():
    """Both problems in one launch of the ranks."""
    return deepspeed_ted.run_expert_parallel_problems([
        # a random router, so routing depends on the tokens, as after training
        deepspeed_ted.expert_parallel_problem(T=T, D=D, E=E, k=K, seed=0),
        # expert 3 unused, and rank 0's tokens kept on rank 0's experts
        deepspeed_ted.expert_parallel_problem(T=T, D=D, E=E, k=K, seed=1, train=False,
                                              unused_experts=(3,), rank0_stays_local=True)], W)


@pytest.fixture(scope="module")
def learned(runs):
    return runs[0]


@pytest.fixture(scope="module")
def uneven(runs):
    return runs[1]


def test_outputs_and_every_gradient_match_single_process(learned):
    """Uniform routing (the paper's zero router) is the claim's run, checked by tests/test_claims.py."""
    result = learned
    assert set(result.errors) == {"y", "grad x", "grad w_gate", "grad w_noise", "grad w1", "grad w2"}
    for name, (max_abs, rel) in result.errors.items():
        assert rel < 1e-5, f"{name}: RMS-relative {rel:.2e}"
        assert max_abs < 1e-4, f"{name}: max |diff| {max_abs:.2e}"
    assert result.seconds < 60


def test_bytes_sent_follow_the_routing(learned):
    result = learned
    reference = deepspeed_ted.single_process_reference(W, **result.problem)
    assert result.sent == expected_bytes(reference["expert_index"], W, E, D)
    assert all(s.dispatch > 0 and s.combine > 0 for s in result.sent)


def test_uneven_routing_unused_expert_and_a_rank_that_stays_local(uneven):
    reference = deepspeed_ted.single_process_reference(W, **uneven.problem)
    routing = reference["expert_index"]
    assert not (routing == 3).any()  # expert 3 (on rank 1) receives nothing
    assert (routing[:T // W] < E // W).all()  # rank 0's tokens never leave rank 0
    for name, (_, rel) in uneven.errors.items():
        assert rel < 1e-5, f"{name}: RMS-relative {rel:.2e}"
    assert uneven.sent == expected_bytes(routing, W, E, D)
    assert uneven.sent[0].dispatch == 0 and uneven.sent[1].combine == 0


def test_regroup_by_expert_orders_rows_by_local_expert_then_source_rank():
    received = torch.tensor([[2, 0, 1], [1, 3, 0]])  # [W, E_l] rows from rank p for expert e
    labels = [(p, e, i) for p in range(2) for e in range(3) for i in range(received[p, e])]
    order = parallel.regroup_by_expert(received)
    grouped = [labels[j] for j in order.tolist()]
    assert grouped == sorted(labels, key=lambda pei: (pei[1], pei[0], pei[2]))
    rows = torch.randn(len(labels), 5)
    assert torch.equal(rows[order][parallel.inverse_order(order)], rows)


def test_regroup_by_expert_with_no_rows():
    order = parallel.regroup_by_expert(torch.zeros(2, 2, dtype=torch.long))
    assert order.shape == (0,) and parallel.inverse_order(order).shape == (0,)


def test_experts_must_divide_over_ranks():
    layer = moe.MoELayer(8, 16, num_experts=3, k=1)
    with pytest.raises(ValueError, match="num_experts.*world_size"):
        parallel.ExpertParallelMoE(layer, rank=0, world_size=2)
    with pytest.raises(ValueError, match="num_experts"):
        deepspeed_ted.run_expert_parallel(world_size=2, E=5)


def test_rank_shard_holds_its_experts():
    layer = moe.MoELayer(8, 16, num_experts=4, k=2)
    shard = parallel.ExpertParallelMoE(layer, rank=1, world_size=2)
    assert torch.equal(shard.w1, layer.w1[2:]) and torch.equal(shard.w2, layer.w2[2:])
    assert torch.equal(shard.w_gate, layer.w_gate) and shard.w1.is_leaf


def test_needs_a_process_group():
    x, w = torch.randn(4, 8), torch.zeros(8, 4)
    with pytest.raises(RuntimeError, match="process group"):
        parallel.expert_parallel_moe(x, w, None, torch.zeros(2, 8, 16), torch.zeros(2, 16, 8), k=1)
