"""Castillo et al. 2023 (Adaptive Guidance): the cosine test, the per-row truncation, its counting."""
import pytest
import torch

from course.diffusion import edm, samplers
from course.diffusion.guidance import guided_denoiser
from course.diffusion.papers import adaptive_guidance as ag

LABELLED = ag.labelled_ring()
SIGMAS = edm.edm_sigmas(6, sigma_max=80.0)


def noise(n=64, seed=0):
    return 80 * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_the_toy_has_two_classes_of_four_adjacent_components():
    assert LABELLED.labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert ag.cfg_evaluations(16) == 62 and ag.cfg_evaluations(1) == 2


def test_prediction_cosine_of_data_and_of_noise():
    x = torch.tensor([[3.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    sigma = torch.tensor([1.0, 2.0], dtype=torch.float64)
    d_c = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    d_u = torch.tensor([[2.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
    expected = torch.tensor([1.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(ag.prediction_cosine(x, sigma, d_c, d_u), expected)
    eps_c, eps_u = (x - d_c) / sigma[:, None], (x - d_u) / sigma[:, None]
    expected = (eps_c * eps_u).sum(1) / (eps_c.norm(dim=1) * eps_u.norm(dim=1))
    torch.testing.assert_close(ag.prediction_cosine(x, sigma, d_c, d_u, "noise"), expected)


def test_a_threshold_above_one_is_full_classifier_free_guidance():
    x = noise()
    cfg = samplers.sample_heun(guided_denoiser(LABELLED, 0, 3.0), x, SIGMAS)
    never = ag.AdaptiveGuidance(LABELLED, 0, 3.0, threshold=1.5)
    torch.testing.assert_close(samplers.sample_heun(never, x, SIGMAS), cfg, rtol=0, atol=0)
    assert never.guided.all() and (never.evaluations == ag.cfg_evaluations(6)).all()


def test_a_threshold_below_minus_one_guides_the_first_evaluation_only():
    x = noise()
    at_once = ag.AdaptiveGuidance(LABELLED, 1, 3.0, threshold=-2.0)
    out = samplers.sample_euler(at_once, x, SIGMAS)
    assert (at_once.evaluations == 6 + 1).all() and not at_once.guided.any()
    conditional = LABELLED.of_class(1).denoise
    first = guided_denoiser(LABELLED, 1, 3.0)
    calls = []

    def by_hand(x, sigma):  # CFG at the first call, the conditional model after it
        calls.append(1)
        return (first if len(calls) == 1 else conditional)(x, sigma)

    torch.testing.assert_close(out, samplers.sample_euler(by_hand, x, SIGMAS), rtol=0, atol=0)


def test_rows_switch_once_and_for_good_and_late_switches_cost_more():
    x = noise(256, seed=1)
    guide = ag.AdaptiveGuidance(LABELLED, 0, 3.0, threshold=0.9999)
    seen = []

    def watched(x, sigma):
        out = guide(x, sigma)
        seen.append(guide.guided.clone())
        return out

    samplers.sample_euler(watched, x, SIGMAS)
    states = torch.stack(seen)  # [calls, N]
    assert (states[1:] <= states[:-1]).all()  # never guided again once dropped
    switched_at = (~states).long().argmax(0) + 1  # evaluations with both models, per row
    expected = torch.where(states[-1], torch.full_like(switched_at, 6), switched_at) + 6
    torch.testing.assert_close(guide.evaluations, expected)
    assert (~states[-1]).any() and states[0].all()  # at sigma = 80 the data predictions disagree


def test_guidance_one_is_the_conditional_model_whatever_the_threshold():
    x, sigma = noise(16), torch.full((16,), 0.5, dtype=torch.float64)
    guide = ag.AdaptiveGuidance(LABELLED, 0, 1.0, threshold=0.0)
    torch.testing.assert_close(guide(x, sigma), LABELLED.of_class(0).denoise(x, sigma))
    torch.testing.assert_close(guide(x, sigma), LABELLED.of_class(0).denoise(x, sigma))


def test_bad_input_is_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="`threshold`"):
        ag.AdaptiveGuidance(LABELLED, 0, 3.0, threshold=float("nan"))
    with pytest.raises(ValueError, match="`prediction`"):
        ag.AdaptiveGuidance(LABELLED, 0, 3.0, prediction="score")
    with pytest.raises(ValueError, match="`c`"):
        ag.AdaptiveGuidance(LABELLED, 2, 3.0)
    with pytest.raises(ValueError, match="`w`"):
        ag.AdaptiveGuidance(LABELLED, 0, -1.0)
    with pytest.raises(TypeError, match="`labelled`"):
        ag.AdaptiveGuidance(LABELLED.mixture, 0, 3.0)
    with pytest.raises(ValueError, match="`prediction`"):
        ag.prediction_cosine(torch.ones(2, 2), torch.ones(2), torch.ones(2, 2), torch.ones(2, 2), "v")
    guide = ag.AdaptiveGuidance(LABELLED, 0, 3.0)
    guide(noise(4), torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="one batch of 4 rows"):
        guide(noise(5), torch.ones(5, dtype=torch.float64))
    with pytest.raises(ValueError, match="`sigma`"):
        guide(noise(4), -torch.ones(4, dtype=torch.float64))
