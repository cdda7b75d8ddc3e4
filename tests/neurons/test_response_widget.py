"""The response-surface widget's logic, without a browser: the recorded trainings (losses fall, the first
snapshot is the initialisation, the surfaces lie on the grid the way the heatmaps draw them, the curves are
the layers' own functions), the controls' modes and timing, the figure, the snapshot, bad input; and the
ready data it draws (`course.neurons.views`)."""
import base64
import time

import matplotlib.figure
import pytest
import torch
import torch.nn.functional as F

from course.neurons import views
from course.neurons.layers import leaky_relu
from course.neurons.views import KAN, LINEAR, QUADRATIC, RATIONAL, SNAPSHOT_STEPS
from course.train import one_thread
from course.widgets import response as rw


@pytest.fixture(autouse=True)
def single_thread():
    """On toy tensors a second intra-op thread only waits (and, beside other processes, spins)."""
    with one_thread():
        yield


@pytest.fixture(scope="module")
def view():
    return rw.gallery()


def test_every_control_answers_within_two_seconds_and_changes_the_summary(view):
    """First of the view's tests, so that each change trains what it needs (little cached)."""
    for control, value in ((view.step, SNAPSHOT_STEPS[-1]), (view.kind, KAN), (view.grid_size, 10),
                           (view.init, views.RANDOM), (view.kind, QUADRATIC),
                           (view.init, views.QUADRATIC_RANDOM),
                           (view.kind, LINEAR), (view.step, 0), (view.kind, RATIONAL), (view.degree, 3),
                           (view.init, views.TANH), (view.step, 30)):
        before = view.summary.value
        start = time.process_time()
        control.value = value
        assert time.process_time() - start < 2.0, control.description
        assert view.summary.value != before, control.description
    last = SNAPSHOT_STEPS[-1]
    assert view.summary.value.startswith(f"<b>rational (degrees 3/2, from tanh): step 30 of {last}, loss ")
    state = view.state()
    torch.testing.assert_close(torch.tensor(view.figure.data[0].z), state.snapshot.hidden)  # follows
    torch.testing.assert_close(torch.tensor(view.figure.data[1].z), state.snapshot.probability)
    assert view.figure.layout.annotations[2].text.startswith("the rational activation R(z)")


def test_every_recorded_training_loses_loss_within_its_budget():
    """Each setting's loss falls from one recorded step to the next and ends below 80 % of its start;
    every setting together trains within the precomputation's budget (3 s of one thread, on CPU time;
    slack for the first call's set-up)."""
    start = time.process_time()
    trainings = views.precompute()
    assert time.process_time() - start < 4.5
    assert set(trainings) == set(views.settings()) and len(trainings) == 15
    for key, t in trainings.items():
        losses = [s.loss for s in t.snapshots]
        assert all(later < earlier for earlier, later in zip(losses, losses[1:])), (key, losses)
        assert losses[-1] < 0.8 * losses[0], (key, losses)
        assert [s.step for s in t.snapshots] == list(SNAPSHOT_STEPS)
        assert len(t.losses) == SNAPSHOT_STEPS[-1] + 1
        for s in t.snapshots:  # the loss `fit` saw before step k is the snapshot's at step k
            assert abs(t.losses[s.step] - s.loss) < 1e-5, key
        assert t.snapshots[-1].accuracy > t.snapshots[0].accuracy
    assert views.training(KAN, 10, views.SMALL).snapshots[-1].accuracy > 0.95
    assert views.training(LINEAR, 7) is trainings[LINEAR, None, views.DEFAULT]  # a size that does not apply
    assert views.training(RATIONAL) is trainings[RATIONAL, 5, views.LEAKY]    # the defaults


@pytest.mark.parametrize("kind, size, init", [(LINEAR, None, views.DEFAULT), (RATIONAL, 5, views.TANH),
                                              (KAN, 3, views.RANDOM), (QUADRATIC, None, views.RELINEAR)])
def test_the_first_snapshot_is_the_fresh_network_on_the_grid(kind, size, init):
    """Step 0 is the initialisation; a surface z [R, R] holds the response at (x1, x2) = (axis[j], axis[i])
    in z[i][j] (a heatmap's z[y][x]); the probability is sigmoid of the network's logit."""
    t = views.training(kind, size, init)
    snap = t.at(0)
    assert snap.hidden.shape == snap.probability.shape == (views.RESOLUTION, views.RESOLUTION)
    net = views.network(kind, size, init)
    axis = views.surface_axis()
    for i, j in ((0, 0), (3, 17), (40, 5), (20, 20)):
        point = torch.tensor([[axis[j], axis[i]]])
        with torch.no_grad():
            torch.testing.assert_close(snap.hidden[i, j], net.hidden(point)[0, t.unit])
            torch.testing.assert_close(snap.probability[i, j], torch.sigmoid(net(point))[0])
    assert 0 <= t.unit < views.HIDDEN
    assert snap.probability.min() >= 0 and snap.probability.max() <= 1


def test_the_curves_are_the_neurons_own_functions():
    """The rational's curve is its activation (at the start near its initial shape, Delfosse et al. 2024,
    section 2); the KAN's two curves are its edge functions: h_j(z, 0) = phi_1j(z) + phi_2j(0); the
    fixed ReLU stays put while the others move."""
    leaky = views.training(RATIONAL, 5, views.LEAKY)
    (name, z, value), = leaky.at(0).curves
    assert name == "R(z)" and (value - leaky_relu(z)).abs().max() < 0.05
    (_, z, value), = views.training(RATIONAL, 5, views.TANH).at(0).curves
    assert (value - torch.tanh(z)).abs().max() < 0.05
    last = SNAPSHOT_STEPS[-1]
    (_, _, now), = leaky.at(last).curves
    assert float((now - leaky.at(0).curves[0][2]).abs().max()) > 0.1  # the activation's shape is learned

    t = views.training(KAN, 5, views.SMALL)
    net = views.network(KAN, 5, views.SMALL)
    (_, z, phi1), (_, z2, phi2) = t.at(0).curves
    assert torch.equal(z, z2) and float(z[0]) == -views.KAN_RANGES[0]
    zero = int((z.abs()).argmin())
    assert float(z[zero]) == pytest.approx(0, abs=1e-6)
    x = torch.stack([z, torch.zeros_like(z)], 1)
    with torch.no_grad():
        torch.testing.assert_close(net.hidden(x)[:, t.unit], phi1 + phi2[zero], atol=1e-5, rtol=1e-5)
    assert all(float((a[2] - b[2]).abs().max()) > 0.01 for a, b in zip(t.at(last).curves, t.at(0).curves))

    relu = views.training(LINEAR)
    (name, z, value), = relu.at(last).curves
    assert name == "ReLU(z)" and torch.equal(value, F.relu(z)) and torch.equal(value, relu.at(0).curves[0][2])
    assert "Its activation, ReLU, is fixed." in rw.summary(rw.state_for(rw.Settings(kind=LINEAR,
                                                                                   init=views.DEFAULT)))


def test_the_initialisations_start_where_they_say():
    """ReLinear starts each quadratic neuron linear (Fan et al. 2023, section 4): relu of a plane, so its
    response surface along x1 at fixed x2 is piecewise linear; "all terms random" does not."""
    def second_difference(kind, init):
        snap = views.training(kind, None, init).at(0)
        return float(snap.hidden.diff(dim=1).diff(dim=1).abs().max())

    # a plane's ramp has second differences only where the ReLU kinks (at most once per row)
    relinear = views.training(QUADRATIC, None, views.RELINEAR).at(0).hidden
    kinks = (relinear.diff(dim=1).diff(dim=1).abs() > 1e-5).sum(dim=1)
    assert int(kinks.max()) <= 2
    assert second_difference(QUADRATIC, views.QUADRATIC_RANDOM) > 1e-3
    small = views.network(KAN, 5, views.SMALL).hidden_layer.coef
    random = views.network(KAN, 5, views.RANDOM).hidden_layer.coef
    torch.testing.assert_close(random, small * views.KAN_RANDOM_SCALE)


def test_controls_that_do_not_apply_are_disabled(view):
    expected = {LINEAR: (True, True, True), RATIONAL: (False, True, False), KAN: (True, False, False),
                QUADRATIC: (True, True, False)}
    for kind, (degree, grid, init) in expected.items():
        view.kind.value = kind
        assert (view.degree.disabled, view.grid_size.disabled, view.init.disabled) == (degree, grid, init)
        assert view.init.options == views.INITS[kind] and view.init.value == views.INITS[kind][0]
        assert not view.step.disabled
        on = rw.applies(rw.Settings(kind=kind, init=views.INITS[kind][0]))
        assert on == {"degree": not degree, "grid_size": not grid, "init": not init}
    before = view.summary.value  # quadratic: neither size applies, the summary stays
    view.degree.value, view.grid_size.value = 7, 3
    assert view.summary.value == before


def test_the_figure_draws_every_panel():
    state = rw.state_for(rw.Settings(kind=KAN, grid_size=5, init=views.SMALL, step=30))
    fig = rw.response_figure(state)
    assert [t.type for t in fig.data] == ["heatmap", "heatmap", "contour"] + ["scatter"] * 9
    x, y = views.task()
    assert len(fig.data[3].x) + len(fig.data[4].x) == len(y) == views.POINTS
    assert all(t.visible is not False for t in fig.data[5:9])  # the KAN's two edges, now and at the start
    assert list(fig.data[11].x) == [30] and fig.data[11].y[0] == state.snapshot.loss
    assert fig.layout.coloraxis2.cmin == 0 and fig.layout.coloraxis2.cmax == 1
    low, high = rw.response_range(state.snapshot)
    assert fig.layout.coloraxis.cmin == low < high == fig.layout.coloraxis.cmax
    rational = rw.response_figure(rw.state_for(rw.Settings()))
    assert rational.data[6].visible is False and rational.data[8].visible is False  # one curve only


def test_the_committed_notebook_shows_a_snapshot_of_the_widget(view):
    """The gallery's view (the module's), back at its first state."""
    view.kind.value = RATIONAL
    view.degree.value, view.init.value, view.step.value = 5, views.LEAKY, SNAPSHOT_STEPS[-2]
    assert view.gallery_control == view.step.description and not view.step.disabled
    assert view.step.index < len(SNAPSHOT_STEPS) - 1  # the gallery moves it to the right
    assert f"step {SNAPSHOT_STEPS[-2]} of {SNAPSHOT_STEPS[-1]}" in view.summary.value
    figure = view.snapshot()
    assert isinstance(figure, matplotlib.figure.Figure) and len(figure.axes) >= 4
    view.snapshot = lambda: figure  # drawn once: the bundle's PNG is this figure's
    bundle = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    assert "run the cell to interact" in bundle["text/plain"]


def test_the_task_is_two_interleaved_spirals():
    x, y = views.two_spirals(400, noise=0.0)
    assert x.shape == (400, 2) and y.shape == (400,) and float(y.mean()) == 0.5
    radius = x.norm(dim=1)
    assert float(radius.max()) <= 1 + 1e-6
    a, b = x[y == 0], x[y == 1]  # class 1 is class 0 turned by pi: the same radii, opposite points
    assert torch.equal(views.two_spirals(400, noise=0.0)[0], x)
    assert (a.norm(dim=1).mean() - b.norm(dim=1).mean()).abs() < 0.1


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match="`kind` must be one of .*; got 'cubic'"):
        views.training("cubic")
    with pytest.raises(ValueError, match=r"`size` \(the KAN spline neuron's grid size\) must be one of"):
        views.training(KAN, 4)
    with pytest.raises(ValueError, match=r"`init` \(the rational neuron's initialisation\) must be one of"):
        views.network(RATIONAL, 5, views.SMALL)
    with pytest.raises(ValueError, match="`n` must be"):
        views.two_spirals(1)
    with pytest.raises(ValueError, match="`turns` must be positive"):
        views.two_spirals(10, turns=0)
    with pytest.raises(ValueError, match="`step` must be one of"):
        views.training(LINEAR).at(7)
    with pytest.raises(ValueError, match="`degree` must be one of"):
        rw.ResponseWidget(degree=4)
    with pytest.raises(ValueError, match="`init` must be one of"):
        rw.settings_for(kind=KAN, init=views.LEAKY)
    with pytest.raises(ValueError, match="`step` must be one of"):
        rw.ResponseWidget(step=40)
