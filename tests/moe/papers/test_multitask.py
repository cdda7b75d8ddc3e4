"""The multi-task toy of the task-routing papers, the conditional MoE and Beyond Distillation's
sub-networks."""
import pytest
import torch

from course.metrics import parameter_count
from course.moe.conditional import ConditionalMoE
from course.moe.papers import beyond_distillation, multitask_toy


def test_task_subnetwork_gives_the_full_models_outputs():
    model = multitask_toy.trained_model("task", 4)
    train, test = multitask_toy.multitask_data(512), multitask_toy.held_out()
    x, key = multitask_toy.expert_inputs(test), multitask_toy.routing_key(test, "task")
    with torch.no_grad():
        full, _, _ = model(x, key)
    for task in range(4):
        used = multitask_toy.experts_used(model, train, "task", task)
        assert len(used) == 1  # task routing: one expert per task
        sub = beyond_distillation.extract_subnetwork(model, used)
        mine = test.task == task
        assert torch.allclose(beyond_distillation.subnetwork_forward(sub, x[mine], key[mine]), full[mine],
                              atol=1e-6)
        assert sub.num_params() < 0.3 * parameter_count(model)


def test_token_routed_model_needs_every_expert():
    model = multitask_toy.trained_model("token", 4)
    test = multitask_toy.held_out()
    x, key = multitask_toy.expert_inputs(test), multitask_toy.routing_key(test, "token")
    sub = beyond_distillation.extract_subnetwork(model, torch.arange(4))
    with torch.no_grad():
        assert torch.allclose(beyond_distillation.subnetwork_forward(sub, x, key), model(x, key)[0],
                              atol=1e-6)


def test_dense_model_is_one_expert_and_data_is_stable_under_added_tasks():
    three, four = multitask_toy.multitask_data(16, 3), multitask_toy.multitask_data(16, 4)
    assert torch.equal(four.x[:48], three.x) and torch.equal(four.y[:48], three.y)
    x, key = multitask_toy.expert_inputs(four), multitask_toy.routing_key(four, "task")
    model = ConditionalMoE(x.shape[1], key.shape[1], 8, 1)
    _, expert_index, probs = model(x, key)
    assert (expert_index == 0).all() and torch.equal(probs, torch.ones(64, 1))


def test_task_routing_bad_arguments():
    data = multitask_toy.multitask_data(4)
    with pytest.raises(ValueError, match="key"):
        multitask_toy.routing_key(data, "sentence")
    with pytest.raises(ValueError, match="amplitudes"):
        multitask_toy.multitask_data(4, 4, amplitudes=(1.0, 2.0))
    with pytest.raises(ValueError, match="task ids"):
        multitask_toy.expert_inputs(multitask_toy.multitask_data(2, 9))
