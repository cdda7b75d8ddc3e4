"""Salimans et al. 2017 (PixelCNN++): the discretized logistic mixture, the masked convolutions."""
import math

import pytest
import torch

from course.diffusion.papers import pixelcnn_pp as pp


def random_params(n, k, *, seed=0, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    logits, means = torch.randn(n, k, generator=g), spread * torch.randn(n, k, generator=g)
    log_scales = torch.empty(n, k).uniform_(-6, 1, generator=g)
    return torch.cat([logits, means, log_scales], dim=1).double()  # [n, 3 k]


def all_levels(params, levels):
    """log P of every level for each row of params [n, 3 K] -> [n, levels]"""
    n = params.shape[0]
    x = torch.arange(levels).repeat(n, 1)  # [n, levels]
    return pp.discretized_logistic_mixture_log_prob(x, params[:, :, None].expand(-1, -1, levels), levels)


@pytest.mark.parametrize("levels", [2, 4, 256])
def test_the_masses_of_all_levels_sum_to_one(levels):
    log_p = all_levels(random_params(32, 3, seed=levels), levels)
    # exact up to the bins below 1e-5, where the density at the centre times the width stands in
    torch.testing.assert_close(log_p.exp().sum(1), torch.ones(32, dtype=torch.float64), atol=2e-5, rtol=0)


def test_a_bin_holds_the_logistic_mass_between_its_edges():
    mean, log_s, levels = 0.1, math.log(0.3), 16
    params = torch.tensor([[0.0, mean, log_s]], dtype=torch.float64)
    log_p = all_levels(params, levels)[0]

    def cdf(v):
        return 1 / (1 + math.exp(-(v - mean) / 0.3))

    half = 1 / (levels - 1)
    for level in (0, 5, 9, levels - 1):
        centre = 2 * level / (levels - 1) - 1
        upper = 1.0 if level == levels - 1 else cdf(centre + half)
        lower = 0.0 if level == 0 else cdf(centre - half)
        assert math.isclose(log_p[level].exp().item(), upper - lower, rel_tol=1e-9)


def test_a_narrow_component_puts_its_mass_on_its_level_and_tiny_masses_stay_finite():
    levels = 256
    centre = 2 * 77 / (levels - 1) - 1
    params = torch.tensor([[0.0, centre, -7.0]], dtype=torch.float64)
    log_p = all_levels(params, levels)[0]
    assert log_p[77].exp() > 0.97 and log_p.exp().max() == log_p[77].exp()  # s = e^-7, a bin 2 / 255 wide
    assert torch.isfinite(log_p).all()  # far bins fall back to the density at their centre
    far = params.clone().requires_grad_()  # level 3, some 74 bins from the mean
    pp.discretized_logistic_mixture_log_prob(torch.tensor([3]), far, levels).sum().backward()
    assert torch.isfinite(far.grad).all()


def test_sampling_follows_the_mixture():
    levels, n = 8, 20000
    params = random_params(1, 2, seed=3, spread=0.5)
    expected = all_levels(params, levels)[0].exp()
    draws = pp.sample_logistic_mixture(params.expand(n, -1), levels, torch.Generator().manual_seed(0))
    counts = torch.bincount(draws, minlength=levels).double() / n
    torch.testing.assert_close(counts, expected, atol=0.015, rtol=0)


def test_images_are_drawn_pixel_by_pixel_in_range_and_reproducibly():
    torch.manual_seed(0)
    model = pp.PixelCNN(outputs=9, channels=4, levels=16)
    a, b = pp.sample_images(model, 3, seed=5), pp.sample_images(model, 3, seed=5)
    assert a.shape == (3, 8, 8) and a.dtype == torch.long and torch.equal(a, b)
    assert 0 <= a.min() and a.max() < 16


def test_masked_convolutions_see_only_earlier_pixels():
    torch.manual_seed(0)
    model = pp.PixelCNN(outputs=9, channels=4, blocks=2, levels=16)
    x = torch.randint(16, (1, 8, 8))
    for row, col in ((0, 0), (3, 5), (7, 7)):
        later = x.clone()
        flat = later.view(-1)
        flat[row * 8 + col:] = torch.randint(16, (64 - row * 8 - col,))
        before, after = model(x)[0, :, row, col], model(later)[0, :, row, col]
        torch.testing.assert_close(before, after)  # pixel (row, col) and later ones never reach it
    mask_b = pp.MaskedConv2d(1, 1, 3, "B").mask
    assert mask_b[1, 1] == 1 and mask_b[1, 2] == 0 and mask_b[2].sum() == 0


def test_quantize_maps_the_range_onto_the_levels():
    images = torch.tensor([[[pp.LOW, pp.HIGH], [pp.LOW - 5, pp.HIGH + 5]]])
    assert pp.quantize(images, 256).tolist() == [[[0, 255], [0, 255]]]


def test_bad_input_is_refused_with_the_argument_named():
    params = random_params(4, 2)[:, :, None]
    with pytest.raises(ValueError, match="`x`"):
        pp.discretized_logistic_mixture_log_prob(torch.full((4, 1), 8), params, 8)
    with pytest.raises(TypeError, match="`x`"):
        pp.discretized_logistic_mixture_log_prob(torch.zeros(4, 1), params, 8)
    with pytest.raises(ValueError, match="`params`"):
        pp.discretized_logistic_mixture_log_prob(torch.zeros(4, 1, dtype=torch.long), params[:, :5], 8)
    with pytest.raises(ValueError, match="`levels`"):
        pp.discretized_logistic_mixture_log_prob(torch.zeros(4, 1, dtype=torch.long), params, 1)
    with pytest.raises(ValueError, match="`logits`"):
        pp.softmax_log_prob(torch.zeros(4, 8, 8, dtype=torch.long), torch.zeros(4, 16, 8, 7))
    with pytest.raises(ValueError, match="`x`"):
        pp.softmax_log_prob(torch.full((4, 8, 8), 16), torch.zeros(4, 16, 8, 8))
    with pytest.raises(ValueError, match="`head`"):
        pp.train_model("gaussian", torch.zeros(4, 8, 8, dtype=torch.long), seed=0)
    with pytest.raises(ValueError, match="`mask`"):
        pp.MaskedConv2d(1, 1, 3, "C")
    with pytest.raises(ValueError, match="`images`"):
        pp.quantize(torch.zeros(8, 8))
