"""The offline tasks, and the training loop that records a trajectory."""
import torch

from course.landscape import models, tasks


def test_tasks_are_seeded_splits_with_every_class():
    for make in (tasks.spirals, tasks.glyphs):
        a, b, c = make(seed=0), make(seed=0), make(seed=1)
        assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)
        assert a.y_train.unique().numel() == a.classes == a.y_test.unique().numel()
        assert a.x_train.shape[1] == a.inputs and not torch.equal(a.x_train[:10], a.x_test[:10])


def test_train_records_the_path_from_initialisation_to_the_trained_parameters():
    task = tasks.spirals(n_train=200, n_test=50, seed=0)
    model = models.mlp((2, 16, 3), seed=0)
    start = models.flatten(model)
    run = tasks.train(model, task.x_train, task.y_train, steps=45, lr=0.2, seed=0, record_every=10)
    assert run.trajectory.shape == (6, models.parameter_count((2, 16, 3)))  # steps 0, 10, .., 40, end
    assert torch.equal(run.trajectory[0], start) and torch.equal(run.trajectory[-1], models.flatten(model))
    assert run.fit.steps == 45 and run.fit.losses[-1] < run.fit.losses[0]
    loss, accuracy = tasks.evaluate(model, task.x_train, task.y_train)
    assert loss < run.fit.losses[0] and 0 <= accuracy <= 1
