"""The trajectory widget's logic, without a browser: paths from noise to data, counted evaluations, the
error against the exact ODE, landing components, guidance, the controls' modes and timing, bad input."""
import base64
import time

import pytest
import torch

from course.diffusion import edm, ode, samplers
from course.train import one_thread
from course.widgets import trajectories as tw


def consistency_stand_in(denoiser, x, sigmas, callback=None):
    """A consistency-style sampler (a stand-in for a trained one): jump to the denoiser's estimate,
    then re-noise to the next level; one evaluation per step."""
    g = torch.Generator().manual_seed(0)
    for i in range(len(sigmas) - 1):
        x = denoiser(x, sigmas[i].expand(x.shape[0])) + sigmas[i + 1] * torch.randn(x.shape, generator=g,
                                                                                      dtype=x.dtype)
        if callback is not None:
            callback({"i": i, "x": x, "sigma_next": float(sigmas[i + 1])})
    return x


def silent_euler(denoiser, x, sigmas, callback=None):
    """A sampler that never reports its steps: the widget still draws its start and end."""
    return samplers.sample_euler(denoiser, x, sigmas)


EXTRA = {"consistency": consistency_stand_in, "silent": silent_euler}


@pytest.fixture(autouse=True)
def single_thread():
    """On toy tensors a second intra-op thread only waits (and, beside other processes, spins)."""
    with one_thread():
        yield


@pytest.fixture(scope="module")
def view():
    return tw.TrajectoryWidget(samplers=EXTRA)


def counting(denoiser):
    calls = [0]

    def counted(x, sigma):
        calls[0] += 1
        return denoiser(x, sigma)

    return counted, calls


def test_every_control_answers_within_two_seconds_and_changes_the_summary(view):
    """First of the view's tests, so that each change computes what it needs (nothing cached)."""
    for control, value in ((view.nfe, 19), (view.sampler, "Euler"), (view.nfe, 24), (view.rho, 3.0),
                           (view.churn, 10.0), (view.guidance, 2.0), (view.target_class, 1),
                           (view.schedule, "laplace"), (view.sampler, "consistency"), (view.sampler, "Heun")):
        before = view.summary.value
        start = time.process_time()
        control.value = value
        assert time.process_time() - start < 2.0, control.description
        assert view.summary.value != before, control.description
    assert "Heun, 23 evaluations" in view.summary.value and "class 1" in view.summary.value


def test_controls_that_do_not_apply_are_disabled(view):
    view.schedule.value = "laplace"
    assert view.rho.disabled and "laplace" in view.summary.value
    view.schedule.value = tw.EDM
    assert not view.rho.disabled
    view.guidance.value = 2.0
    assert not view.target_class.disabled
    view.guidance.value = 0.0
    assert view.target_class.disabled and "unconditional" in view.summary.value
    view.sampler.value = "Euler"
    view.nfe.value = 10
    view.sampler.value = "Heun"  # Heun's NFE moves in twos: 2 steps - 1
    assert view.nfe.step == 2 and view.nfe.value == 9 and "9 evaluations over 5 steps" in view.summary.value
    view.sampler.value = "consistency"
    assert view.churn.disabled and not view.rho.disabled


def test_paths_start_at_sigma_max_noise_and_end_near_the_data():
    s = tw.settings_for(nfe=33)
    path = tw.simulate(s)
    z = tw.start_noise()
    assert path.states.shape == (18, tw.PARTICLES, 2) and path.levels.tolist()[::17] == [80.0, 0.0]
    torch.testing.assert_close(path.states[0], tw.SIGMA_MAX * z)
    assert path.states[0].std() > 70  # noise at sigma_max, the data's scale is 2
    distance = torch.cdist(path.end, tw.MEANS).min(1).values
    assert (distance < 3 * 0.15).double().mean() > 0.9
    assert ode.rms_error(path.end, tw.exact_for(s)) < 0.1
    drawn = tw.vp_scale(path.states, path.levels)  # noise and data in one frame
    assert 1.2 < float(drawn[0].std()) < 1.7 and torch.equal(drawn[-1], path.end)


def test_the_exact_solution_is_converged_and_cached():
    exact = tw.exact_endpoints(0.0, 0)
    assert tw.exact_endpoints(0.0, 0) is exact and tw.exact_for(tw.Settings(target_class=1)) is exact
    finer = ode.solve_pf_ode(tw.denoiser_for(0.0, 0), tw.SIGMA_MAX * tw.start_noise(), tw.SIGMA_MAX,
                             steps=2 * tw.EXACT_STEPS)
    assert ode.rms_error(exact, finer) < 1e-4  # under 2% of the smallest error the panel shows


def test_heuns_error_against_the_exact_solution_falls_as_nfe_grows():
    evaluations, errors = tw.error_curve(tw.Settings(sampler="Heun"), grid=(9, 17, 33, 63))
    assert evaluations == [9, 17, 33, 63]
    assert all(a > 2 * b for a, b in zip(errors, errors[1:])), errors  # second order: ~4x per doubling
    assert errors[-1] < 0.02


@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_heun_with_nfe_2n_minus_1_calls_the_denoiser_exactly_that_often(n):
    assert tw.steps_for("Heun", 2 * n - 1) == n and tw.steps_for("Heun", 2 * n) == n
    assert tw.steps_for("Euler", n) == n
    for sampler, expected in (("Heun", 2 * n - 1), ("Euler", n)):
        counted, calls = counting(tw.denoiser_for(0.0, 0))
        path = tw.trajectories(counted, tw.start_noise(8), edm.edm_sigmas(n), sampler)
        assert calls[0] == path.evaluations == expected
        assert path.states.shape == (n + 1, 8, 2)
    path = tw.simulate(tw.Settings(sampler="Heun", nfe=2 * n))  # an even budget: one fewer is spent
    assert path.evaluations == 2 * n - 1


def test_landing_components_are_the_nearest_mixture_means():
    x = 3 * torch.randn(300, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    landed = tw.landing_component(x).tolist()
    for point, k in zip(x.tolist(), landed):
        distances = [sum((p - m) ** 2 for p, m in zip(point, mean)) for mean in tw.MEANS.tolist()]
        assert k == distances.index(min(distances))
    assert tw.landing_component(tw.MEANS + 0.1).tolist() == list(range(8))


def test_guidance_zero_is_the_unconditional_sampler_and_guidance_one_the_conditional():
    z, sigmas = tw.start_noise(), edm.edm_sigmas(9)
    unconditional = samplers.sample_heun(tw.LABELLED.mixture.denoise, sigmas[0] * z, sigmas)
    for c in (0, 1):
        assert torch.equal(tw.trajectories(tw.denoiser_for(0.0, c), z, sigmas).end, unconditional)
    path = tw.simulate(tw.Settings(guidance=1.0, target_class=1))
    assert (tw.LABELLED.labels[tw.landing_component(path.end)] == 1).double().mean() > 0.95
    assert "guided to class 1" in tw.summary(tw.Settings(guidance=1.0, target_class=1), path, 0.1)
    assert "unconditional (guidance w = 0)" in tw.summary(tw.Settings(), path, 0.1)


def test_schedules_give_decreasing_levels_and_churn_climbs():
    for name in tw.SCHEDULES:
        sigmas = tw.sigmas_for(name, 12, rho=3.0)
        edm.check_sigmas("test", sigmas)
        assert sigmas[0] <= tw.SIGMA_MAX and sigmas[-1] == 0 and len(sigmas) <= 13
    torch.testing.assert_close(tw.sigmas_for(tw.EDM, 5, 3.0), edm.edm_sigmas(5, rho=3.0))
    calm = tw.simulate(tw.Settings(nfe=9))
    churned = tw.simulate(tw.Settings(nfe=9, churn=4.0))
    assert torch.equal(calm.sigma_hats, calm.sigmas[:-1])
    assert (churned.sigma_hats > churned.sigmas[:-1]).all()


def test_the_callers_samplers_are_counted_and_drawn(view):
    consistency = tw.simulate(tw.Settings(sampler="consistency", nfe=4), EXTRA)
    assert consistency.evaluations == 4 and consistency.states.shape[0] == 5
    assert consistency.levels.tolist() == tw.sigmas_for(tw.EDM, 4).tolist()
    silent = tw.simulate(tw.Settings(sampler="silent", nfe=6), EXTRA)
    assert silent.evaluations == 6 and silent.states.shape[0] == 2 and silent.levels[-1] == 0
    view.sampler.value = "consistency"
    assert view.churn.disabled and "consistency" in view.summary.value
    evaluations, _ = view.curves(view.settings())["consistency"]
    assert evaluations == list(tw.EXTRA_GRID)
    view.sampler.value = "Heun"


def test_panels_draw_every_particle_once_in_its_components_colour():
    s = tw.Settings(nfe=9, churn=2.0)
    path, exact = tw.simulate(s), tw.exact_for(s)
    curves = {"Euler": ([1, 3], [1.0, 0.5]), "Heun": ([1, 3], [1.0, 0.2])}
    traces = tw.panel_traces(path, exact, s, curves, 0.3)
    assert len(traces) == 8 + 8 + 2 + 2 + len(curves) + 1
    assert sum(t["x"].count(None) for t in traces[:8]) == tw.PARTICLES  # one path per particle
    assert all(len(t["x"]) == len(t["y"]) == t["x"].count(None) * 7 for t in traces[:8])  # 6 states, a gap
    landed = tw.landing_component(path.end)
    assert [len(t["x"]) for t in traces[8:16]] == torch.bincount(landed, minlength=8).tolist()
    assert traces[18]["x"] == list(range(5)) and len(traces[19]["x"]) == 5  # churn climbs every step
    assert traces[-1]["x"] == [9] and traces[-1]["y"] == [0.3]


def test_colours_of_different_meanings_differ():
    used = [*tw.PALETTE, tw.MEAN, tw.EXACT, tw.CHURN, *tw.SAMPLER_COLORS]
    assert len(set(used)) == len(used) and len(tw.PALETTE) == len(tw.MEANS)


def test_the_committed_notebook_shows_a_snapshot_of_the_widget():
    view = tw.gallery()
    bundle = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    assert "run the cell to interact" in bundle["text/plain"] and "VBox(" not in bundle["text/plain"]
    assert view.gallery_control == view.nfe.description and view.nfe.step == 2  # the gallery moves NFE


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match=r"`sampler` must be one of \('Euler', 'Heun'\); got 'DDIM'"):
        tw.TrajectoryWidget(sampler="DDIM")
    with pytest.raises(ValueError, match=r"`nfe` must be an int in \[1, 63\]; got 0"):
        tw.TrajectoryWidget(nfe=0)
    with pytest.raises(ValueError, match=r"`nfe` must be an int in \[1, inf\]; got -2"):
        tw.settings_for(nfe=-2)
    with pytest.raises(ValueError, match="`churn` must be a finite number >= 0; got -1"):
        tw.TrajectoryWidget(churn=-1.0)
    with pytest.raises(ValueError, match="`guidance` must be a finite number >= 0; got -0.5"):
        tw.TrajectoryWidget(guidance=-0.5)
    with pytest.raises(ValueError, match="`schedule` must be one of .*; got 'quadratic'"):
        tw.TrajectoryWidget(schedule="quadratic")
    with pytest.raises(ValueError, match="`schedule` must be one of"):
        tw.sigmas_for("quadratic", 4)
    with pytest.raises(ValueError, match=r"`target_class` must be an int in \[0, 1\]; got 2"):
        tw.TrajectoryWidget(target_class=2)
    with pytest.raises(ValueError, match="`rho` must be > 0"):
        tw.settings_for(rho=0.0)
    with pytest.raises(ValueError, match="`samplers` must map new names"):
        tw.TrajectoryWidget(samplers={"Heun": consistency_stand_in})
    with pytest.raises(TypeError, match="`samplers` must be a dict"):
        tw.TrajectoryWidget(samplers=[consistency_stand_in])
    with pytest.raises(ValueError, match="`sampler` must be one of"):
        tw.trajectories(tw.denoiser_for(0.0, 0), tw.start_noise(4), edm.edm_sigmas(2), "consistency")
    with pytest.raises(ValueError, match="`churn` must be a finite number >= 0; got nan"):
        tw.trajectories(tw.denoiser_for(0.0, 0), tw.start_noise(4), edm.edm_sigmas(2), churn=float("nan"))
    with pytest.raises(ValueError, match="`sigmas` must decrease strictly"):
        tw.trajectories(tw.denoiser_for(0.0, 0), tw.start_noise(4), torch.tensor([1.0, 2.0, 0.0]))

    def no_state(denoiser, x, sigmas, callback=None):
        callback({"i": 0})
        return x

    with pytest.raises(ValueError, match="sampler 'bad' must call `callback` with a dict holding the state"):
        tw.trajectories(tw.denoiser_for(0.0, 0), tw.start_noise(4), edm.edm_sigmas(2), "bad",
                        samplers={"bad": no_state})
    with pytest.raises(ValueError, match="the denoiser must return the state's shape"):
        tw.trajectories(tw.denoiser_for(0.0, 0), tw.start_noise(4), edm.edm_sigmas(2), "short",
                        samplers={"short": lambda d, x, s, callback=None: x[:2]})
