"""The mode-connectivity papers' shared toy: training side by side is separate training; spawning."""
import pytest
import torch

from course.landscape import models
from course.landscape.papers import pairs_toy as pt


def test_training_side_by_side_gives_what_separate_runs_give():
    widths = pt.widths_for(6)
    data = pt.task(0)
    theta0 = pt.initial_thetas(widths, (1, 2, 3))
    rows = pt.data_rows((10, 11, 12), 15, len(data.x_train), batch=8)
    together, _ = pt.train_side_by_side(theta0, widths, data.x_train, data.y_train, rows, lr=0.3)
    alone, _ = pt.train_side_by_side(theta0[1:2], widths, data.x_train, data.y_train, rows[:, 1:2], lr=0.3)
    torch.testing.assert_close(together[1], alone[0], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(together[0], together[1])
    torch.testing.assert_close(theta0[0], models.flatten(models.mlp(widths, seed=1)))


def test_a_spawned_child_is_the_parent_until_its_spawn_step():
    parent = torch.zeros(6, 2, dtype=torch.long)
    children = torch.arange(1, 4).repeat_interleave(12).reshape(3, 6, 2).permute(1, 0, 2)  # [T, M, B]
    rows = pt.spawn_rows(parent, children, [0, 3, 6])
    assert torch.equal(rows[:, 0], children[:, 0])
    assert torch.equal(rows[:3, 1], parent[:3]) and torch.equal(rows[3:, 1], children[3:, 1])
    assert torch.equal(rows[:, 2], parent)
    with pytest.raises(ValueError, match="`spawn_steps` one per member"):
        pt.spawn_rows(parent, children, [0, 3])


def test_children_spawned_at_the_last_step_are_the_parent_and_checkpoints_are_recorded():
    widths, data = pt.widths_for(5), pt.task(0)
    parent = pt.data_rows((1,), 12, len(data.x_train), batch=8)[:, 0]
    own = pt.data_rows((2, 3, 4), 12, len(data.x_train), batch=8)
    rows = pt.spawn_rows(parent, own, [12, 12, 4])
    theta0 = pt.initial_thetas(widths, (0,)).expand(3, -1).contiguous()
    theta, recorded = pt.train_side_by_side(theta0, widths, data.x_train, data.y_train, rows, lr=0.3,
                                            record_at={0, 4, 12}, decay=True)
    assert torch.equal(theta[0], theta[1]) and not torch.equal(theta[0], theta[2])
    assert torch.equal(recorded[4][0], recorded[4][2]) and torch.equal(recorded[0][0], theta0[0])
    assert torch.equal(recorded[12], theta)


def test_batched_logits_are_each_members_logits():
    widths = (3, 4, 5, 2)
    theta = pt.initial_thetas(widths, (0, 1))
    x = torch.randn(2, 7, 3)
    out = pt.batched_logits(theta, x, widths)
    for m in range(2):
        torch.testing.assert_close(out[m], models.mlp_logits(theta[m], x[m], widths))
    with pytest.raises(ValueError, match="`rows` must be"):
        pt.train_side_by_side(theta, widths, x[0], torch.zeros(7, dtype=torch.long),
                              torch.zeros(3, 1, 2, dtype=torch.long))
