"""HGRN's toy: the two models differ only by the lower bounds."""
import torch

from course.ssm.papers import hgrn


def test_the_two_models_differ_only_in_their_lower_bounds():
    a, b = hgrn.model(True, 0), hgrn.model(False, 0)
    assert (b.lower_bounds() == 0).all() and (a.lower_bounds()[1:] > 0).all()
    names_a = {n for n, _ in a.named_parameters()}
    assert names_a - {n for n, _ in b.named_parameters()} == {"Gamma"}
    same = dict(b.named_parameters())
    assert all(torch.equal(p, same[n]) for n, p in a.named_parameters() if n != "Gamma")  # same init


def test_the_task_puts_the_class_at_the_start():
    d = hgrn.far_class(16, 0)
    assert d.length == hgrn.T and torch.equal(d.inputs[:, 0], d.targets[:, -1])
