"""The one training helper: seeded, one thread, an early stop on a target, clear errors."""
import pytest
import torch

from course.train import DecayingAdam, fit, one_thread


def quadratic():
    w = torch.tensor([3.0, -2.0], requires_grad=True)
    return w, lambda: (w ** 2).sum()


def test_fit_minimizes_and_stops_once_the_target_is_reached():
    w, loss = quadratic()
    full = fit([w], loss, steps=400, lr=0.1)
    assert full.steps == 400 and full.final_loss < 1e-3 and not full.reached_target
    w, loss = quadratic()
    early = fit([w], loss, steps=400, lr=0.1, target=0.5)
    assert early.reached_target and early.final_loss <= 0.5 and early.steps < 100


def test_fit_is_seeded_and_leaves_the_callers_random_state_and_threads_alone():
    def noisy_run():
        w = torch.zeros(3, requires_grad=True)
        fit([w], lambda: ((w - torch.randn(3)) ** 2).sum(), steps=20, lr=0.1, seed=7)
        return w.detach()

    torch.manual_seed(123)
    before = torch.get_num_threads()
    first = noisy_run()
    after_first = torch.randn(1)
    torch.manual_seed(123)
    assert torch.equal(noisy_run(), first)  # the same seed, the same training
    assert torch.equal(torch.randn(1), after_first)  # the caller's RNG went on as if untouched
    assert torch.get_num_threads() == before
    with one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_fit_names_its_bad_arguments():
    w, loss = quadratic()
    with pytest.raises(ValueError, match="`lr` must be > 0"):
        fit([w], loss, steps=10, lr=0.0)
    with pytest.raises(ValueError, match="require grad"):
        fit([torch.zeros(2)], loss, steps=10, lr=0.1)
    with pytest.raises(ValueError, match="`steps`"):
        fit([w], loss, steps=-1, lr=0.1)


def test_decaying_adam_falls_linearly_to_zero():
    p = torch.zeros(1, requires_grad=True)
    opt, seen = DecayingAdam([p], lr=0.4, total=4), []
    for _ in range(5):
        p.grad = torch.ones(1)
        opt.step()
        seen.append(opt.param_groups[0]["lr"])
    assert seen == pytest.approx([0.4, 0.3, 0.2, 0.1, 0.0])
