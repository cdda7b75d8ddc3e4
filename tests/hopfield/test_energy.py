"""The energy widget's logic, without a browser: the energy never rises in any mode, the classical
network fails beyond its capacity and retrieves within it, small beta gives a blend (a metastable
average), the steps are the library's updates, the controls' modes and timing, the figure, the snapshot
and bad input (`course.hopfield.views`, `course.widgets.energy`)."""
import base64
import math
import time

import matplotlib.figure
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.hopfield import classical, modern, sparse, views
from course.hopfield.views import CLASSICAL, GLYPH_SET, MASK, MODERN, NOISE, RANDOM_SET, SOFTMAX, SPARSEMAX
from course.train import one_thread
from course.widgets import energy as ew


@pytest.fixture(autouse=True)
def single_thread():
    """On toy tensors a second intra-op thread only waits (and, beside other processes, spins)."""
    with one_thread():
        yield


def assert_close(actual, expected, atol: float = 1e-9):
    """Equal within atol everywhere (float64; torch.testing's first call costs seconds of imports)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert float((actual - expected).abs().max()) <= atol, (actual, expected)


@pytest.fixture(scope="module")
def view():
    return ew.gallery()


def test_every_control_answers_within_two_seconds_and_changes_the_summary(view):
    """First of the view's tests, so that each change computes what it needs (little cached)."""
    for control, value in ((view.beta, 0.01), (view.weighting, SPARSEMAX), (view.n_patterns, 12),
                           (view.corruption, MASK), (view.amount, 0.3), (view.pattern_set, RANDOM_SET),
                           (view.n_patterns, 30), (view.kind, CLASSICAL), (view.pattern_set, GLYPH_SET)):
        before = view.summary.value
        start = time.process_time()
        control.value = value
        assert time.process_time() - start < 2.0, control.description
        assert view.summary.value != before, control.description
    assert view.n_patterns.value == 16 and view.n_patterns.max == 16  # the glyph set has 16 images
    assert view.summary.value.startswith("<b>classical network (Hebb's rule, asynchronous sweeps), 16 stored "
                                         "glyph images (D = 64")
    assert "its last 30% of pixels masked" in view.summary.value
    state = view.state()
    drawn = [list(row) for row in view.figure.data[0].z]  # the figure follows the controls
    assert drawn == ew.mosaic(state.retrieval.states, views.STEPS + 1)
    assert view.figure.data[1].y == tuple(state.retrieval.energies.tolist())


@pytest.mark.parametrize("pattern_set", views.PATTERN_SETS)
@pytest.mark.parametrize("corruption", views.CORRUPTIONS)
@pytest.mark.parametrize("kind, weighting", [(CLASSICAL, SOFTMAX), (MODERN, SOFTMAX), (MODERN, SPARSEMAX)])
def test_the_energy_never_rises_in_any_mode(kind, weighting, corruption, pattern_set):
    """Asynchronous sweeps (Hopfield 1982), eq. 3 on eq. 2 (Ramsauer et al., Theorem 1) and sparsemax
    on its energy (Hu et al. 2023) are each a descent: E_t+1 <= E_t, from beta 0.001 to 3."""
    for beta in (0.001, 0.03, 0.3, 3.0) if kind == MODERN else (1.0,):  # classical: beta does not apply
        for M in (1, 5, views.MAX_PATTERNS[pattern_set]):
            r = views.retrieval_steps(kind, weighting, beta, M, corruption, 0.3, seed=1,
                                      pattern_set=pattern_set)
            assert views.energy_is_monotone(r.energies), (beta, M, r.energies)
            assert "never rising" in views.summary(r)


@settings(max_examples=20, deadline=None)
@given(kind=st.sampled_from(views.KINDS), weighting=st.sampled_from(views.WEIGHTINGS),
       log_beta=st.floats(-3, 1), M=st.integers(1, 16), corruption=st.sampled_from(views.CORRUPTIONS),
       amount=st.floats(0, 1), seed=st.integers(0, 50), pattern_set=st.sampled_from(views.PATTERN_SETS))
def test_the_energy_never_rises_for_any_setting(kind, weighting, log_beta, M, corruption, amount, seed,
                                                 pattern_set):
    r = views.retrieval_steps(kind, weighting, 10 ** log_beta, M, corruption, amount, seed, pattern_set)
    assert views.energy_is_monotone(r.energies)
    assert r.states.shape == (views.STEPS + 1, views.D) and r.energies.shape == (views.STEPS + 1,)
    if kind == CLASSICAL:  # every update leaves a binary state
        assert ((r.states[1:] == 1) | (r.states[1:] == -1)).all()


def test_the_classical_network_retrieves_within_its_capacity_and_fails_beyond():
    """Random patterns, D = 64: the capacity is about 0.138 D = 9 (Amit et al. 1985). At M = 6 every
    query (10% corrupted) comes back, seeds 0, 1, 2; at M = 32 (0.5 D) none does, while the modern network
    (beta 0.3) retrieves every one."""
    for corruption in views.CORRUPTIONS:
        for seed in range(3):
            within = views.retrieval_steps(CLASSICAL, SOFTMAX, 1.0, 6, corruption, 0.1, seed, RANDOM_SET)
            assert within.retrieved and within.wrong_pixels == 0, (corruption, seed)
            beyond = views.retrieval_steps(CLASSICAL, SOFTMAX, 1.0, 32, corruption, 0.1, seed, RANDOM_SET)
            assert not beyond.retrieved, (corruption, seed)
            assert "not retrieved" in views.summary(beyond)
            assert "capacity for random patterns is about 0.138 D = 9" in views.summary(beyond)
            modern_ = views.retrieval_steps(MODERN, SOFTMAX, 0.3, 32, corruption, 0.1, seed, RANDOM_SET)
            assert modern_.retrieved and modern_.wrong_pixels == 0, (corruption, seed)
    # correlated glyph images: two are retrieved, all 16 are not (the modern network retrieves them)
    for seed in range(3):
        assert views.retrieval_steps(CLASSICAL, SOFTMAX, 1.0, 2, NOISE, 0.1, seed).retrieved
        crowded = views.retrieval_steps(CLASSICAL, SOFTMAX, 1.0, 16, NOISE, 0.1, seed)
        assert not crowded.retrieved and "every pixel off" in views.outcome(crowded)  # the background
        assert views.retrieval_steps(MODERN, SOFTMAX, 0.3, 16, NOISE, 0.1, seed).retrieved


@pytest.mark.parametrize("weighting", views.WEIGHTINGS)
def test_small_beta_gives_a_blend_and_large_beta_the_pattern(weighting):
    """Ramsauer et al., section 2: as beta -> 0 the softmax weights are uniform and the one fixed point is
    the patterns' mean (a metastable state averaging all of them); at large beta the stored pattern."""
    M = 8
    small = views.retrieval_steps(MODERN, weighting, 0.001, M, NOISE, 0.15, 0)
    assert small.blend and not small.retrieved
    assert "metastable average" in views.summary(small)
    if weighting == SOFTMAX:
        assert views.participation(small.weights[-1]) > 0.95 * M
        assert_close(small.states[-1], small.patterns.mean(0), atol=0.02)
    else:
        assert int((small.weights[-1] > 0).sum()) > 1  # sparsemax averages a few patterns too
    large = views.retrieval_steps(MODERN, weighting, 3.0, M, NOISE, 0.15, 0)
    assert large.retrieved and not large.blend and large.largest_weight > 0.999
    assert_close(large.states[-1], large.patterns[0], atol=1e-3)
    # the 2-D toy: at small beta the query ends between the points (the mean), at large beta on one
    low, high = views.toy(weighting, views.toy_beta(0.001)), views.toy(weighting, views.toy_beta(3.0))
    if weighting == SOFTMAX:
        assert_close(low.path[-1], views.TOY_PATTERNS.mean(0), atol=0.05)
    assert "between the stored points" in views.toy_text(low)
    assert views.toy_text(high).startswith("the query ends at stored point 1 (within 0.0")
    for t in (low, high):
        assert views.energy_is_monotone(t.path_energies) and (t.surface > 0).all()


def test_the_steps_are_the_librarys_updates():
    X = views.stored_patterns(GLYPH_SET, 6)
    query = views.corrupt(X[0], NOISE, 0.2)
    r = views.retrieval_steps(MODERN, SOFTMAX, 0.2, 6, NOISE, 0.2)
    assert_close(r.states[0], query)
    assert_close(r.states[1:2], modern.retrieve(query[None], X, 0.2))
    assert_close(r.energies, modern.energy(r.states, X, 0.2))
    assert_close(r.weights[0], (0.2 * X @ query).softmax(0))
    s = views.retrieval_steps(MODERN, SPARSEMAX, 0.05, 6, NOISE, 0.2)
    assert_close(s.states[1:2], sparse.sparse_retrieve(query[None], X, 0.05))
    assert_close(s.energies, sparse.sparse_energy(s.states, X, 0.05))
    c = views.retrieval_steps(CLASSICAL, SOFTMAX, 1.0, 6, NOISE, 0.2)
    W = classical.hebbian_weights(X)
    assert_close(c.energies, classical.energy(c.states, W))
    assert c.weights is None and s.weights.shape == (views.STEPS, 6)
    # a fixed point of the sweeps: sgn(W s) = s (every unit's field agrees with it)
    if torch.equal(c.states[-1], c.states[-2]):
        assert torch.equal(classical.sgn(c.states[-1] @ W), c.states[-1])


def test_the_patterns_and_the_corruptions():
    glyphs = views.all_glyph_images()
    assert glyphs.shape == (16, views.D) and len({tuple(g.tolist()) for g in glyphs}) == 16
    assert ((glyphs == 1) | (glyphs == -1)).all()
    X = views.stored_patterns(GLYPH_SET, 5, seed=3)
    assert torch.equal(X, views.stored_patterns(GLYPH_SET, 5, seed=3)) and len(X) == 5
    R = views.stored_patterns(RANDOM_SET, 32, seed=1)
    assert R.shape == (32, 64) and ((R == 1) | (R == -1)).all() and abs(float(R.mean())) < 0.1
    noisy = views.corrupt(X[0], NOISE, 0.25)
    assert int((noisy != X[0]).sum()) == 16 and torch.equal(noisy.abs(), X[0].abs())
    masked = views.corrupt(X[0], MASK, 0.25)
    assert (masked[-16:] == 0).all() and torch.equal(masked[:-16], X[0][:-16])
    assert torch.equal(views.corrupt(X[0], MASK, 0.0), X[0])


def test_controls_that_do_not_apply_are_disabled(view):
    view.kind.value = MODERN
    assert not view.beta.disabled and not view.weighting.disabled
    view.kind.value = CLASSICAL
    assert view.beta.disabled and view.weighting.disabled
    before = view.summary.value
    view.beta.value, view.weighting.value = 2.0, SOFTMAX  # neither applies: the summary stays
    assert view.summary.value == before and "β" not in before
    view.kind.value = MODERN
    assert not view.beta.disabled and not view.weighting.disabled
    assert "modern network (softmax, β = 2)" in view.summary.value
    assert ew.applies(ew.Settings(kind=CLASSICAL)) == {"beta": False, "weighting": False}


def test_the_figure_draws_every_panel():
    state = ew.retrieval_for(ew.Settings(pattern_set=RANDOM_SET, n_patterns=20))
    fig = ew.energy_figure(state)
    assert [t.type for t in fig.data] == ["heatmap", "scatter", "scatter", "heatmap", "contour", "scatter",
                                          "scatter"]
    steps = fig.data[0].z
    assert len(steps) == views.SIDE and len(steps[0]) == (views.STEPS + 1) * (views.SIDE + 1) - 1
    assert steps[0][views.SIDE] is None  # the gap between the query and the first update
    stored = fig.data[3].z  # 20 patterns, 16 to a row: two rows, the second with 4
    assert len(stored) == 2 * views.SIDE + 1 and len(stored[0]) == 16 * (views.SIDE + 1) - 1
    assert stored[views.SIDE + 1][4 * (views.SIDE + 1)] is None
    assert stored[views.SIDE + 1][3 * (views.SIDE + 1)] is not None
    assert list(fig.data[6].x) == views.TOY_PATTERNS[:, 0].tolist()
    assert fig.layout.coloraxis.cmin == -1 and fig.layout.coloraxis.cmax == 1
    frames, outline = fig.layout.shapes[:-1], fig.layout.shapes[-1]  # a frame per image, pattern 1's outline
    assert len(frames) == views.STEPS + 1 + 20 and outline.line.color == ew.TARGET
    assert outline.xref == "x3" and outline.yref == "y4"
    assert (outline.x0, outline.x1) == (-0.5, views.SIDE - 0.5)
    assert fig.layout.yaxis.range == (views.SIDE - 0.5, -0.5)  # images upright
    assert fig.layout.xaxis.ticktext[0] == "query"


def test_the_committed_notebook_shows_a_snapshot_of_the_widget(view):
    """The gallery's view (the module's), back at its first state."""
    first = ew.Settings()
    view.kind.value, view.weighting.value = first.kind, first.weighting
    view.pattern_set.value = first.pattern_set
    view.beta.value, view.n_patterns.value = first.beta, first.n_patterns
    view.corruption.value, view.amount.value = first.corruption, first.amount
    assert view.gallery_control == view.beta.description and not view.beta.disabled
    assert view.beta.value < 10 ** view.beta.max  # the gallery moves it to the right
    assert "retrieved (every sign right" in view.summary.value
    figure = view.snapshot()
    assert isinstance(figure, matplotlib.figure.Figure) and len(figure.axes) >= 5
    view.snapshot = lambda: figure  # drawn once: the bundle's PNG is this figure's
    bundle = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    assert "run the cell to interact" in bundle["text/plain"] and "VBox(" not in bundle["text/plain"]


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match="`kind` must be one of .*; got 'quantum'"):
        views.retrieval_steps("quantum", SOFTMAX, 1.0, 4, NOISE, 0.1)
    with pytest.raises(ValueError, match="`weighting` must be one of"):
        ew.EnergyWidget(weighting="entmax")
    with pytest.raises(ValueError, match="`beta` must be positive and finite"):
        views.retrieval_steps(MODERN, SOFTMAX, 0.0, 4, NOISE, 0.1)
    with pytest.raises(TypeError, match="`beta` must be a positive number"):
        views.toy(SOFTMAX, "1")
    with pytest.raises(ValueError, match=r"`n_patterns` must be an int in \[1, 16\]; got 17"):
        views.retrieval_steps(MODERN, SOFTMAX, 1.0, 17, NOISE, 0.1)
    with pytest.raises(ValueError, match=r"`n_patterns` must be an int in \[1, 32\]; got 0"):
        ew.settings_for(pattern_set=RANDOM_SET, n_patterns=0)
    with pytest.raises(ValueError, match="`corruption` must be one of .*; got 'blur'"):
        views.corrupt(torch.ones(64, dtype=torch.float64), "blur", 0.1)
    with pytest.raises(ValueError, match=r"`amount` must be a fraction of the pixels in \[0, 1\]; got 1.5"):
        views.retrieval_steps(MODERN, SOFTMAX, 1.0, 4, MASK, 1.5)
    with pytest.raises(ValueError, match="`pattern_set` must be one of"):
        views.stored_patterns("faces", 3)
    with pytest.raises(ValueError, match=r"`beta` must be in \[0.001, 3.16\]"):
        ew.EnergyWidget(beta=10.0)
    with pytest.raises(ValueError, match=r"`amount` must be in \[0.0, 0.5\]"):
        ew.EnergyWidget(amount=0.8)
    assert math.isclose(views.toy_beta(0.5), 0.5 * views.D)
