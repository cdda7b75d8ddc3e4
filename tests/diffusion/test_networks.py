"""The trained denoisers: the MLP, its preconditioning, EDM's loss and training, schedules as training
levels, and the memorisation comparison with the ideal denoiser."""
import pytest
import torch

from course.diffusion import edm, mixtures, networks


def g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_point_and_glyph_denoisers_keep_the_shape_of_the_state():
    torch.manual_seed(0)
    point, glyph = networks.point_denoiser(2, 1.4), networks.glyph_denoiser()
    assert point(torch.randn(5, 2), torch.rand(5) + 0.1).shape == (5, 2)
    assert glyph(torch.randn(3, 8, 8), torch.rand(3) + 0.1).shape == (3, 8, 8)
    assert networks.DenoiserMLP((3,))(torch.randn(4, 3), torch.zeros(4)).shape == (4, 3)


def test_noise_features_are_c_noise_and_its_sines_and_cosines():
    f = networks.noise_features(torch.tensor([0.0, 0.5]))
    k = len(networks.FREQUENCIES)
    assert f.shape == (2, 1 + 2 * k)
    torch.testing.assert_close(f[0], torch.tensor([0.0] + [0.0] * k + [1.0] * k))
    torch.testing.assert_close(f[1, 1 + k], torch.cos(torch.tensor(0.5 * networks.FREQUENCIES[0])))


def test_the_network_sees_c_in_x_and_c_noise_and_the_output_is_c_skip_x_plus_c_out_f():
    torch.manual_seed(0)
    denoiser = networks.point_denoiser(2, sigma_data=0.7)
    seen = {}

    def record(module, args, out):
        seen["x_in"], seen["c_noise"], seen["raw"] = args[0], args[1], out

    denoiser.network.register_forward_hook(record)
    x, sigma = torch.randn(6, 2, generator=g()), torch.tensor([0.01, 0.1, 0.5, 1.0, 5.0, 80.0])
    out = denoiser(x, sigma)
    c_skip, c_out, c_in, c_noise = edm.preconditioning(sigma, 0.7)
    torch.testing.assert_close(seen["x_in"], c_in[:, None] * x)
    torch.testing.assert_close(seen["c_noise"], c_noise)
    torch.testing.assert_close(out, c_skip[:, None] * x + c_out[:, None] * seen["raw"])


def fixed_loss(denoiser, y, sigma_data):
    sigma = networks.log_normal_sigmas(y.shape[0], g(5)).float()
    noise = torch.randn(y.shape, generator=g(6))
    with torch.no_grad():
        return float(networks.denoising_loss(denoiser, y, sigma, noise, sigma_data))


@pytest.mark.parametrize("kind", ["points", "glyphs"])
def test_training_lowers_edm_loss_on_a_fixed_batch(kind):
    if kind == "points":
        y = mixtures.ring().sample(512, seed=0)[0].float()
    else:
        from course.data import glyph_images
        y = glyph_images(256, seed=0)[0]
    with torch.random.fork_rng():
        torch.manual_seed(1)
        start = networks.DenoiserMLP(tuple(y.shape[1:]))
    before = fixed_loss(edm.Preconditioned(start, float(y.std())), y, float(y.std()))
    trained, fit = networks.train_denoiser(y, steps=60, seed=1)
    assert fit.steps == 60
    assert fixed_loss(trained, y, trained.sigma_data) < 0.9 * before


def test_training_is_seeded_and_the_average_is_returned_apart_from_the_trained_weights():
    y = mixtures.ring().sample(128, seed=0)[0].float()
    a, _ = networks.train_denoiser(y, steps=5, seed=3)
    b, _ = networks.train_denoiser(y, steps=5, seed=3)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    denoiser = networks.point_denoiser(2, float(y.std()))
    start = [p.detach().clone() for p in denoiser.parameters()]
    averaged, _ = networks.train_denoiser(y, denoiser, steps=0, seed=0)
    assert averaged is not denoiser
    for p, q in zip(averaged.parameters(), start):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    plain, _ = networks.train_denoiser(y, denoiser, steps=2, seed=0, ema=None)
    assert plain is denoiser


@pytest.mark.parametrize("name,options", [("linear", {}), ("cosine", {}), ("shifted_cosine", {"shift": 0.25}),
                                          ("laplace", {}), ("laplace", {"mu": 1.0, "scale": 2.0})])
def test_sigma_of_t_rises_monotonically_to_high_noise_at_t_1_and_samplers_use_it(name, options):
    t = torch.linspace(0, 1, 201, dtype=torch.float64)
    sigma = networks.sigma_of_t(name, t, **options)
    assert (sigma.diff() >= 0).all()  # flat only where the log-SNR is clipped, at the ends
    assert (sigma[10:-10].diff() > 0).all() and sigma[-1] > 10 * sigma[100] > 100 * sigma[0]
    drawn = networks.schedule_sampler(name, **options)(100, g(2))
    torch.testing.assert_close(drawn, networks.sigma_of_t(name, torch.rand(100, generator=g(2),
                                                                             dtype=torch.float64), **options))


def test_shifting_by_b_multiplies_every_level_by_1_over_b():
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    ratio = networks.sigma_of_t("shifted_cosine", t, shift=0.25) / networks.sigma_of_t("cosine", t)
    torch.testing.assert_close(ratio, torch.full_like(ratio, 4.0))


def test_memorisation_the_ideal_denoiser_copies_its_training_points():
    ring = mixtures.ring()
    points = ring.sample(8, seed=1)[0]
    rows = networks.memorisation(points, ring, steps=20, samples=64, sampling_steps=8, seed=0)
    assert set(rows) == {"ideal", "network", "fresh"}
    assert rows["ideal"]["copies"] == 1.0 and rows["ideal"]["nearest"] < 1e-3
    assert rows["fresh"]["nearest"] > 0.05 and rows["network"]["nearest"] > 1e-3
    assert rows["network"]["samples"].shape == (64, 2)
    nearest = networks.nearest_distance(points[:3] + 0.1, points)
    assert nearest.shape == (3,) and (nearest <= 0.1 * 2 ** 0.5 + 1e-9).all()


def test_bad_input_is_refused_by_name():
    y = torch.randn(16, 2)
    cases = [
        (lambda: networks.train_denoiser(torch.arange(8).view(4, 2), steps=1, seed=0), TypeError, "`data`"),
        (lambda: networks.train_denoiser(torch.full((4, 2), float("nan")), steps=1, seed=0),
         ValueError, "`data`"),
        (lambda: networks.train_denoiser(torch.randn(4), steps=1, seed=0), ValueError, "`data`"),
        (lambda: networks.train_denoiser(y, steps=-1, seed=0), ValueError, "`steps`"),
        (lambda: networks.train_denoiser(y, steps=1, seed=0, ema=1.0), ValueError, "`ema`"),
        (lambda: networks.train_denoiser(y, torch.nn.Linear(2, 2), steps=1, seed=0), TypeError, "`denoiser`"),
        (lambda: networks.train_denoiser(y, steps=1, seed=0, sigma_sampler=lambda n, g: torch.ones(n + 1)),
         ValueError, "`sigma_sampler`"),
        (lambda: networks.DenoiserMLP((0, 2)), ValueError, "`shape`"),
        (lambda: networks.DenoiserMLP((2,), hidden=0), ValueError, "`hidden`"),
        (lambda: networks.DenoiserMLP((2,))(torch.randn(3, 5), torch.zeros(3)), ValueError, "`x_in`"),
        (lambda: networks.point_denoiser(0), ValueError, "`dim`"),
        (lambda: networks.schedule_sampler("nope"), ValueError, "`name`"),
        (lambda: networks.schedule_sampler("shifted_cosine", shift=0.0), ValueError, "`shift`"),
        (lambda: networks.memorisation(torch.randn(4, 3), mixtures.ring()), ValueError, "`points`"),
        (lambda: networks.memorisation(y, mixtures.ring(), samples=0), ValueError, "`samples`"),
        (lambda: networks.memorisation(y, torch.zeros(2)), TypeError, "`mixture`"),
        (lambda: networks.nearest_distance(y, torch.randn(3, 5)), ValueError, "`points`"),
        (lambda: networks.noise_features(torch.zeros(2, 2)), ValueError, "`c_noise`"),
    ]
    for call, error, name in cases:
        with pytest.raises(error, match=name):
            call()
