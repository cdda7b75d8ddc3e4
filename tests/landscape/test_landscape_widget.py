"""The landscape widget's logic, without a browser: the surface around a run's end, the path on the plane,
the line between two networks before and after alignment, non-finite losses as gaps, the controls'
modes and timing, the snapshot, bad input; and the ready data it draws (`course.landscape.views`)."""
import base64
import math
import time

import matplotlib.figure
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.landscape import models, permutation, views
from course.landscape.grid import surface as grid_surface
from course.train import one_thread
from course.widgets import landscape as lw


@pytest.fixture(autouse=True)
def single_thread():
    """On toy tensors a second intra-op thread only waits (and, beside other processes, spins)."""
    with one_thread():
        yield


@pytest.fixture(scope="module")
def data():
    return views.widget_data(seed=0)


@pytest.fixture(scope="module")
def view(data):
    return lw.LandscapeWidget(data)


def test_every_control_answers_within_two_seconds_and_changes_the_summary(view):
    """First of the view's tests, so that each change computes what it needs (nothing cached)."""
    for control, value in ((view.directions, lw.PCA), (view.lr, 2.0), (view.pair, 64), (view.resolution, 11),
                           (view.directions, lw.RANDOM), (view.span, 1.5), (view.aligned, False)):
        before = view.summary.value
        start = time.process_time()
        control.value = value
        assert time.process_time() - start < 2.0, control.description
        assert view.summary.value != before, control.description
    assert "width 64" in view.summary.value and "learning rate 2" in view.summary.value
    assert "11 x 11 grid (random directions, span ±1.5)" in view.summary.value
    assert "alignment off" in view.summary.value


def test_the_surface_at_the_centre_is_the_models_loss_and_the_path_ends_there(data):
    pair, x, y = data.pairs[32], data.task.x_train, data.task.y_train
    for kind in lw.DIRECTIONS:
        for lr in (0.5, 2.0):
            state = lw.landscape(data, lw.Settings(pair=32, directions=kind, resolution=11, lr=lr))
            theta = pair.runs[lr][-1]
            loss = float(models.mlp_loss(theta, x, y, pair.widths))
            assert math.isclose(state.centre_loss, loss, rel_tol=1e-5), (kind, lr)
            assert state.alphas[5] == 0 and state.betas[5] == 0
            assert torch.allclose(state.path[-1], torch.zeros(2), atol=1e-5), kind  # the run's end
            assert math.isclose(float(state.path_losses[-1]), loss, rel_tol=1e-5)
    torch.testing.assert_close(pair.runs[data.base_lr][-1], pair.theta_a)  # the base run is network A


def test_the_path_losses_are_the_surfaces_heights_where_the_path_meets_the_grid(data):
    """A path through grid points has, at each, the surface's loss there (same op, same plane)."""
    pair = data.pairs[16]
    theta = pair.runs[0.5][-1]
    d1, d2, _ = lw.plane_directions(lw.FILTER, theta, pair.widths, seed=3)
    alphas, betas = lw.symmetric_axis(5, 1.0), lw.symmetric_axis(7, 0.6)
    surface = grid_surface(data.task.x_train, data.task.y_train, theta, d1, d2, alphas, betas, pair.widths)
    at = torch.tensor([[0, 0], [1, 4], [4, 6], [2, 3]])
    coords = torch.stack([alphas[at[:, 0]], betas[at[:, 1]]], dim=1)
    losses = lw.plane_losses(data.task.x_train, data.task.y_train, theta, d1, d2, coords, pair.widths)
    torch.testing.assert_close(losses, surface[at[:, 0], at[:, 1]], rtol=1e-5, atol=1e-6)


def test_the_path_lies_closer_to_its_pca_plane_than_to_a_random_one(data):
    """Li et al. 2018, section 7: random directions miss the path, PCA's catch most of it."""
    pair = data.pairs[32]
    trajectory = pair.runs[0.5]
    theta = trajectory[-1]

    def off_plane(d1, d2):  # the path's distance from the plane, relative to its length from theta
        coords = lw.path_on_plane(trajectory, theta, d1, d2)
        on = theta + coords[:, :1] * d1 + coords[:, 1:] * d2
        return float((trajectory - on).norm() / (trajectory - theta).norm())

    d1, d2, explained = lw.plane_directions(lw.PCA, theta, pair.widths, trajectory)
    assert explained[0] + explained[1] > 0.8 and off_plane(d1, d2) < 0.5
    random_plane = off_plane(*lw.plane_directions(lw.RANDOM, theta, pair.widths, seed=0)[:2])
    assert random_plane > 0.95 and off_plane(d1, d2) < random_plane / 2
    on_plane = theta + torch.tensor([[0.3], [-1.0]]) * d1 + torch.tensor([[2.0], [0.5]]) * d2
    torch.testing.assert_close(lw.path_on_plane(on_plane, theta, d1, d2),
                               torch.tensor([[0.3, 2.0], [-1.0, 0.5]]), rtol=1e-4, atol=1e-4)


def test_directions_have_the_scales_the_docstring_promises(data):
    pair = data.pairs[32]
    theta = pair.theta_a
    d1, d2, explained = lw.plane_directions(lw.RANDOM, theta, pair.widths, seed=5)
    assert explained is None and not torch.equal(d1, d2)
    for d in (d1, d2):
        assert math.isclose(float(d.norm()), float(theta.norm()), rel_tol=1e-5)
    f1, _, _ = lw.plane_directions(lw.FILTER, theta, pair.widths, seed=5)
    for (Wd, bd), (Wt, _) in zip(models.unflatten(f1, pair.widths), models.unflatten(theta, pair.widths)):
        torch.testing.assert_close(Wd.norm(dim=1), Wt.norm(dim=1))
        assert not bd.any()
    p1, p2, _ = lw.plane_directions(lw.PCA, theta, pair.widths, pair.runs[0.5])
    assert math.isclose(float(p1.norm()), 1.0, rel_tol=1e-5) and abs(float(p1 @ p2)) < 1e-5


def test_axes_hold_zero_and_pca_axes_cover_the_path(data):
    axis = lw.symmetric_axis(31, 1.5)
    assert len(axis) == 31 and axis[15] == 0 and axis[0] == -1.5 and axis[-1] == 1.5
    torch.testing.assert_close(axis, -axis.flip(0))
    state = lw.landscape(data, lw.Settings(directions=lw.PCA, resolution=11, span=0.5))
    reach = state.path.abs().amax(0)
    assert state.alphas[-1] >= reach[0] and state.betas[-1] >= reach[1]
    assert math.isclose(float(state.alphas[-1]), lw.PCA_MARGIN * float(reach[0]), rel_tol=1e-5)
    alphas, betas = lw.plane_axes(lw.PCA, 0.7, 5, torch.tensor([[2.0, 0.0], [0.0, 0.0]]))
    assert alphas[-1] == 2.5 and math.isclose(float(betas[-1]), 0.7, rel_tol=1e-6)  # no move: the span
    random_state = lw.landscape(data, lw.Settings(directions=lw.RANDOM, resolution=11, span=0.5))
    assert random_state.alphas[-1] == 0.5 and random_state.betas[0] == -0.5


def test_alignment_lowers_the_barrier_on_every_precomputed_pair(data):
    for hidden, pair in data.pairs.items():
        line = lw._alignment(data, hidden)
        assert line["after"] < 0.5 * line["before"], hidden
        aligned = permutation.permute(pair.theta_b, pair.widths, line["perms"])  # the same function
        torch.testing.assert_close(models.mlp_logits(aligned, data.task.x_test, pair.widths),
                                   models.mlp_logits(pair.theta_b, data.task.x_test, pair.widths),
                                   rtol=1e-5, atol=1e-5)
        ends = line["losses_before"][[0, -1]], line["losses_after"][[0, -1]]
        torch.testing.assert_close(ends[0], ends[1], rtol=1e-5, atol=1e-6)  # A, and B as the same function


@settings(max_examples=30, deadline=None)
@given(half=st.integers(1, 40), extent=st.floats(1e-3, 1e3), coords=st.lists(
    st.tuples(st.floats(-5, 5), st.floats(-5, 5)), min_size=1, max_size=6))
def test_axes_are_symmetric_and_the_projection_recovers_points_on_the_plane(half, extent, coords):
    axis = lw.symmetric_axis(2 * half + 1, extent)
    assert len(axis) == 2 * half + 1 and axis[half] == 0 and torch.equal(axis, -axis.flip(0))
    assert (axis.diff() > 0).all() and math.isclose(float(axis[-1]), extent, rel_tol=1e-6)
    g = torch.Generator().manual_seed(half)
    theta, d1, d2 = torch.randn(3, 40, generator=g, dtype=torch.float64)
    c = torch.tensor(coords, dtype=torch.float64)
    points = theta + c[:, :1] * d1 + c[:, 1:] * d2
    torch.testing.assert_close(lw.path_on_plane(points, theta, d1, d2), c, rtol=1e-6, atol=1e-8)


def test_the_alignment_toggle_shows_and_hides_the_aligned_line(view):
    view.aligned.value = True
    line = view.state().line
    assert f"{line['before']:.3g} as trained, {line['after']:.3g} after weight matching" in view.summary.value
    assert view.figure.data[-1].visible is True and len(view.figure.data[-1].y) == lw.LINE_POINTS
    view.aligned.value = False
    assert view.figure.data[-1].visible is False and "alignment off" in view.summary.value
    assert "after weight matching" not in view.summary.value
    view.aligned.value = True


def test_controls_that_do_not_apply_are_disabled(view):
    view.directions.value = lw.PCA
    assert view.span.disabled and "PCA of the path, explaining" in view.summary.value
    before = view.summary.value
    view.span.value = 0.75  # no effect on PCA's plane
    assert view.summary.value == before
    view.directions.value = lw.FILTER
    assert not view.span.disabled and "span ±0.75" in view.summary.value
    view.span.value = 1.0


def test_non_finite_losses_are_gaps_counted_in_the_summary(data):
    pair = data.pairs[16]
    theta = pair.theta_a
    d1, d2, _ = lw.plane_directions(lw.FILTER, theta, pair.widths)
    far = torch.tensor([0.0, 1e30, 3e38])  # weights that overflow float32: NaN losses
    surface = grid_surface(data.task.x_train, data.task.y_train, theta, d1, d2, far, far, pair.widths)
    assert torch.isfinite(surface[0, 0]) and not torch.isfinite(surface[2, 2])
    state = lw.landscape(data, lw.Settings(pair=16, resolution=3))
    state.surface, state.alphas, state.betas = surface, far, far
    bad = int((~torch.isfinite(surface)).sum())
    assert f"{bad} of 9 grid losses non-finite, drawn as gaps" in lw.summary(state)
    traces = lw.landscape_traces(surface, far, far, lw.state_paths(state))
    assert traces[0]["z"][2][2] is None and traces[1]["z"][2][2] is None and traces[0]["z"][0][0] is not None
    assert all(math.isfinite(v) for v in (traces[0]["cmin"], traces[0]["cmax"]))
    state.surface = torch.full((3, 3), float("nan"))
    assert "no finite loss on the 3 x 3 grid" in lw.summary(state)
    assert lw.color_range(lw.log_loss(state.surface)) == (0.0, 1.0)
    lw.landscape_figure(state.surface, far, far, lw.state_paths(state), state.line)  # draws, no error


def test_the_figure_draws_the_surface_the_contours_and_each_path():
    alphas, betas = torch.linspace(-1, 1, 3), torch.linspace(-2, 2, 5)
    surface = 1 + alphas[:, None] ** 2 + 0.1 * betas[None, :] ** 2  # [3, 5]: rows are alphas
    paths = {"one": (torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([2.4, 1.0])),
             "two": (torch.tensor([[0.5, -1.0], [0.2, 0.1], [0.0, 0.0]]), torch.tensor([1.4, 1.1, 1.0]))}
    fig = lw.landscape_figure(surface, alphas, betas, paths)
    assert [t.type for t in fig.data] == ["surface", "contour", *["scatter3d", "scatter"] * 2]
    z = fig.data[0].z  # plotly's rows are y: z[j][i] = loss(alpha_i, beta_j)
    assert len(z) == 5 and len(z[0]) == 3 and z[4][2] == pytest.approx(float(surface[2, 4]))
    assert fig.data[1].z[4][2] == pytest.approx(math.log10(float(surface[2, 4])))
    assert list(fig.data[4].z) == pytest.approx([1.4, 1.1, 1.0]) and fig.data[5].name == "two"
    assert fig.data[3].marker.symbol == ("square", "diamond")
    assert fig.data[3].line.color != fig.data[5].line.color
    line = {"ts": torch.linspace(0, 1, 3), "losses_before": torch.tensor([0.1, 0.9, 0.2]),
            "losses_after": torch.tensor([0.1, 0.2, 0.2])}
    fig = lw.landscape_figure(surface, alphas, betas, paths, line, aligned=False)
    assert len(fig.data) == 8 and fig.data[-1].visible is False
    assert list(fig.data[-2].y) == pytest.approx([0.1, 0.9, 0.2])


def test_colours_of_different_meanings_differ():
    used = [*lw.PATH_COLORS, lw.BEFORE, lw.AFTER]
    assert len(set(used)) == len(used)


def test_the_ready_data_holds_two_networks_and_the_runs_per_pair(data):
    assert views.widget_data(0) is data and tuple(data.pairs) == views.PAIR_HIDDEN
    assert data.learning_rates == tuple(sorted(views.LEARNING_RATES)) and data.base_lr in data.learning_rates
    T = views.STEPS // views.RECORD_EVERY + 1
    for hidden, pair in data.pairs.items():
        P = models.parameter_count(pair.widths)
        assert pair.widths == (2, hidden, hidden, 3) and pair.theta_b.shape == (P,)
        starts = torch.stack([run[0] for run in pair.runs.values()])
        assert (starts == starts[0]).all()  # every run from A's initialisation
        assert all(run.shape == (T, P) and torch.isfinite(run).all() for run in pair.runs.values())
        assert not torch.allclose(pair.theta_a, pair.theta_b)
        assert pair.train_losses[data.base_lr][-1] < 0.5 * pair.train_losses[data.base_lr][0]  # it learned
    assert views.pair_name(32, 1251) == data.pairs[32].name == "width 32 (1251 parameters)"


def test_the_committed_notebook_shows_a_snapshot_of_the_widget(data):
    view = lw.gallery()
    assert view.data is data and view.gallery_control == view.lr.description
    assert view.lr.value == data.base_lr and view.lr.index < len(view.lr.options) - 1  # the gallery moves it
    figure = view.snapshot()
    assert isinstance(figure, matplotlib.figure.Figure) and len(figure.axes) >= 3
    view.snapshot = lambda: figure  # drawn once: the bundle's PNG is this figure's
    bundle = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    assert "run the cell to interact" in bundle["text/plain"] and "VBox(" not in bundle["text/plain"]


def test_bad_arguments_are_refused_by_name(data):
    with pytest.raises(ValueError, match=r"`pair` must be one of the hidden widths \(16, 32, 64\); got 48"):
        lw.LandscapeWidget(data, pair=48)
    with pytest.raises(ValueError, match="`directions` must be one of .*; got 'hessian'"):
        lw.LandscapeWidget(data, directions="hessian")
    with pytest.raises(ValueError, match=r"`resolution` must be one of \(11, 21, 31, 41\); got 30"):
        lw.LandscapeWidget(data, resolution=30)
    with pytest.raises(ValueError, match="`resolution` must be odd"):
        lw.settings_for(data, resolution=30)
    with pytest.raises(ValueError, match="`span` must be a finite number > 0; got 0"):
        lw.LandscapeWidget(data, span=0)
    with pytest.raises(ValueError, match=r"`lr` must be one of the trained learning rates .*; got 0.3 "
                                         r"\(the widget never trains\)"):
        lw.LandscapeWidget(data, lr=0.3)
    with pytest.raises(ValueError, match="`aligned` must be True or False; got 1"):
        lw.settings_for(data, aligned=1)
    with pytest.raises(TypeError, match="`data` must be the WidgetData"):
        lw.LandscapeWidget({"pairs": {}})
    with pytest.raises(ValueError, match="`kind` must be one of"):
        lw.plane_directions("sideways", data.pairs[16].theta_a, data.pairs[16].widths)
    with pytest.raises(ValueError, match="PCA directions need the run's `trajectory`"):
        lw.plane_directions(lw.PCA, data.pairs[16].theta_a, data.pairs[16].widths)
    with pytest.raises(ValueError, match="`n` must be odd"):
        lw.symmetric_axis(4, 1.0)
    with pytest.raises(ValueError, match=r"`surface` must be \[A, B\] = \[3, 2\]"):
        lw.landscape_traces(torch.zeros(2, 3), torch.zeros(3), torch.zeros(2), {})
    with pytest.raises(ValueError, match="`seed` must be"):
        views.widget_data(-1)
    with pytest.raises(ValueError, match="`d1` must be a nonzero direction"):
        lw.path_on_plane(data.pairs[16].runs[0.5], data.pairs[16].theta_a,
                         torch.zeros_like(data.pairs[16].theta_a), data.pairs[16].theta_a)
