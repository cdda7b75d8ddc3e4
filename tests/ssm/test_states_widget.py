"""The state widget's logic, without a browser: the receptive field against autograd through the scan, the
gate lower bound against HGRN's half-life, local attention's window, the papers' gate formulas, the
controls' modes and timing, the figure, the snapshot, bad input; and the ready data it draws
(`course.ssm.views`)."""
import base64
import math
import time

import matplotlib.figure
import pytest
import torch
from hypothesis import given, settings, strategies as st

from course.ssm import views
from course.ssm.scan import scan_step_loop
from course.ssm.selective import selective_scan
from course.train import one_thread
from course.widgets import states as sw


@pytest.fixture(autouse=True)
def single_thread():
    """On toy tensors a second intra-op thread only waits (and, beside other processes, spins)."""
    with one_thread():
        yield


@pytest.fixture(scope="module")
def view():
    return sw.gallery()


def test_every_control_answers_within_two_seconds_and_changes_the_summary(view):
    """First of the view's tests, so that each change computes what it needs (little cached)."""
    for control, value in ((view.lower_bound, 0.6), (view.sequence, views.NOISE), (view.model, views.LOCAL),
                           (view.window, 12), (view.reference, views.RG_LRU), (view.model, views.SELECTIVE),
                           (view.sequence, views.SPIKE), (view.reference, views.HGRN),
                           (view.lower_bound, 0.9)):
        before = view.summary.value
        start = time.process_time()
        control.value = value
        assert time.process_time() - start < 2.0, control.description
        assert view.summary.value != before, control.description
    assert view.summary.value.startswith("<b>spike sequence (T = 64, 16 channels). selective SSM (Mamba)")
    assert "Compared with HGRN (lower bound 0.9): mean gate" in view.summary.value
    c = view.state()
    drawn = torch.tensor(view.figure.data[0].z, dtype=torch.float64)
    torch.testing.assert_close(drawn, c.chosen.states.T)  # the figure follows the controls
    assert view.figure.layout.annotations[1].text == "state h_t: HGRN (γ 0.9)"


@pytest.mark.parametrize("model", views.RECURRENT)
def test_the_receptive_field_is_the_derivative_of_the_state_through_the_scan(model):
    """d h_t / d v_s by autograd through the library's scan (float64), gates and scales as the sequence
    sets them, against prod_{k=s+1..t} a_k * b_s from cumulative log-gates; 0 across channels."""
    x = views.sequence(views.NOISE, 20)
    a, b, v = views.recurrence_maps(model, x, lower_bound=0.7)
    v = v.detach().requires_grad_(True)
    h = views.states(a, b, v)
    field = views.receptive_field(a, b)
    for t in range(len(x)):  # channels are independent: the sum's gradient is each channel's own
        grad, = torch.autograd.grad(h[t].sum(), v, retain_graph=True)
        torch.testing.assert_close(grad, field[t], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h, scan_step_loop(a[None], (b * v)[None])[0])
    full = views.trace(model, views.COPY, 0.7)  # the widget's own data, at its last position
    v = full.values.clone().requires_grad_(True)
    grad, = torch.autograd.grad(views.states(full.gates, full.scales, v)[-1].sum(), v)
    torch.testing.assert_close(grad, full.field[-1], rtol=1e-10, atol=1e-12)


def test_raising_the_gate_lower_bound_lengthens_hgrns_half_life():
    """HGRN (arXiv:2311.04823, section 3): lambda_t = gamma + (1 - gamma) mu_t >= gamma, so a higher bound
    keeps more of the past: the half-life grows with gamma on every sequence."""
    bounds = (0.0, 0.5, 0.75, 0.9, 0.95)
    for name in views.SEQUENCES:
        traces = [views.trace(views.HGRN, name, gamma) for gamma in bounds]
        lives = [t.half_life for t in traces]
        assert all(low < high for low, high in zip(lives, lives[1:])), (name, lives)
        kept = [views.decay_field(t.gates)[-1] for t in traces]  # every fraction kept grows with gamma
        assert all((low <= high).all() for low, high in zip(kept, kept[1:])), name
        for gamma, t in zip(bounds, traces):
            assert float(t.gates.min()) >= gamma and float(t.gates.max()) < 1
    lives = [sw.compare(sw.Settings(lower_bound=g)).chosen.half_life for g in (0.2, 0.8)]
    assert lives[0] < lives[1]


@pytest.mark.parametrize("window", [1, 5, 64, 100])
def test_local_attentions_field_is_zero_outside_its_window(window):
    t = views.trace(views.LOCAL, views.NOISE, window=window)
    T = len(t.x)
    rows, cols = torch.meshgrid(torch.arange(T), torch.arange(T), indexing="ij")
    inside = (cols <= rows) & (cols > rows - window)
    weights = t.field[:, :, 0]
    assert (weights[~inside] == 0).all() and (weights[inside] > 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(T, dtype=torch.float64))
    assert (t.field == weights[:, :, None]).all()  # one head: the same field for every channel
    torch.testing.assert_close(t.states, weights @ t.values)
    if window == 1:
        torch.testing.assert_close(t.states, t.values)  # attends to itself only
    assert t.gates is None and t.half_life is None
    seen = min(window, T)
    assert f"the last position sees exactly its last {seen} input" in sw.describe(t)


def test_the_gates_follow_the_papers_formulas():
    x = views.sequence(views.COPY)
    # Griffin (arXiv:2402.19427, section 2.4): a_t = sigmoid(Lambda)^(c r_t), b_t = sqrt(1 - a_t^2) i_t.
    a, b, _ = views.rg_lru_maps(x)
    r = torch.sigmoid(views.affine("rg_lru.recurrence_gate", x, scale=2.0))
    i = torch.sigmoid(views.affine("rg_lru.input_gate", x, scale=2.0))
    torch.testing.assert_close(a, torch.sigmoid(views.rg_lru_lambda()) ** (views.RG_LRU_C * r))
    torch.testing.assert_close(b, torch.sqrt(1 - a ** 2) * i)
    a_c = torch.sigmoid(views.rg_lru_lambda()) ** views.RG_LRU_C
    assert math.isclose(float(a_c.min()), 0.9) and math.isclose(float(a_c.max()), 0.999)
    # Mamba (arXiv:2312.00752) with N = 1 and C = 1: the library's selective scan gives the same states.
    a, b, u = views.selective_maps(x)
    A = views.selective_A()
    delta = torch.log(a) / A
    B = b / delta
    torch.testing.assert_close(B, B[:, :1].expand_as(B))  # one B_t per step, shared by the channels
    y = selective_scan(u[None], delta[None], A[:, None], B[None, :, :1], torch.ones_like(B[None, :, :1]))
    torch.testing.assert_close(y[0], views.states(a, b, u))
    assert len(set(delta[:, 0].tolist())) > 1  # the step depends on the input: selective
    # Retention (arXiv:2307.08621): a fixed decay per head; linear attention: no decay, phi(k) > 0.
    a, _, _ = views.retention_maps(x)
    assert sorted(set(a.flatten().tolist())) == [1 - 2 ** -5, 1 - 2 ** -6, 1 - 2 ** -7, 1 - 2 ** -8]
    a, b, _ = views.linear_attention_maps(x)
    assert (a == 1).all() and (b > 0).all() and views.half_life(a) is None


@settings(max_examples=25, deadline=None)
@given(T=st.integers(1, 24), low=st.floats(1e-6, 1.0), seed=st.integers(0, 1000))
def test_the_decay_field_is_the_running_product_and_never_nan(T, low, seed):
    g = torch.Generator().manual_seed(seed)
    a = low + (1 - low) * torch.rand(T, 3, generator=g, dtype=torch.float64)
    field = views.decay_field(a)
    expected = torch.zeros(T, T, 3, dtype=torch.float64)
    for t in range(T):
        running = torch.ones(3, dtype=torch.float64)
        for s in range(t, -1, -1):
            expected[t, s] = running
            running = running * a[s]
    torch.testing.assert_close(field, expected, rtol=1e-9, atol=1e-300)
    assert torch.isfinite(views.decay_field(torch.full((T, 2), 1e-200, dtype=torch.float64))).all()


@settings(max_examples=25, deadline=None)
@given(gate=st.floats(0.05, 0.99))
def test_a_constant_gates_half_life_is_log_one_half_over_log_a(gate):
    a = torch.full((64, 2), gate, dtype=torch.float64)
    k = math.ceil(math.log(0.5) / math.log(gate) - 1e-9)
    assert views.half_life(a) == (k if k <= 63 else None)


def test_controls_that_do_not_apply_are_disabled(view):
    view.model.value, view.reference.value = views.RG_LRU, views.RETENTION
    assert view.lower_bound.disabled and view.window.disabled
    before = view.summary.value
    view.lower_bound.value, view.window.value = 0.3, 20  # neither applies: nothing changes
    assert view.summary.value == before
    view.model.value = views.HGRN
    assert not view.lower_bound.disabled and view.window.disabled and "HGRN (lower bound 0.3)" in \
        view.summary.value
    view.reference.value = views.LOCAL
    assert not view.lower_bound.disabled and not view.window.disabled
    assert "local attention (window 20)" in view.summary.value
    view.model.value = views.SELECTIVE
    assert view.lower_bound.disabled and not view.window.disabled
    assert sw.applies(sw.Settings(model=views.LOCAL, reference=views.HGRN)) == {"lower_bound": True,
                                                                                 "window": True}


def test_the_figure_draws_every_panel():
    c = sw.compare(sw.Settings(model=views.LINEAR, reference=views.LOCAL, sequence=views.STEP, window=4))
    fig = sw.states_figure(c)
    assert [t.type for t in fig.data] == ["heatmap"] * 6 + ["scatter"] * 4
    T, D = 64, views.CHANNELS
    assert len(fig.data[0].z) == D and len(fig.data[0].z[0]) == T  # channels up, time across
    assert all(v is None for row in fig.data[3].z for v in row)  # local attention has no gate
    assert all(v == 1 for row in fig.data[2].z for v in row)  # linear attention's gates are 1
    field = fig.data[4].z  # rows t, columns s: gaps above the diagonal
    assert field[3][10] is None and field[10][3] is not None
    local = fig.data[5].z
    assert local[10][6] is None and local[10][7] is not None  # outside and inside the window of 4
    assert fig.data[8].visible is False  # linear attention never halves: no half-life line
    assert fig.layout.annotations[3].text == "no decay gate: local attention (w 4)"
    assert fig.layout.coloraxis4.cmin == sw.FIELD_FLOOR and fig.layout.coloraxis3.cmax == 1
    hgrn = sw.compare(sw.Settings()).chosen
    line = sw.half_life_line(hgrn, 1.0)
    assert line["visible"] and line["x"] == [63 - hgrn.half_life] * 2
    assert math.isnan(float(sw.log_field(torch.zeros(1)))) and float(sw.log_field(torch.tensor([1e-9]))) == -6


def test_the_committed_notebook_shows_a_snapshot_of_the_widget(view):
    """The gallery's view (the module's), back at its first state."""
    first = sw.Settings()
    view.model.value, view.reference.value, view.sequence.value = first.model, first.reference, first.sequence
    view.lower_bound.value, view.window.value = first.lower_bound, first.window
    assert view.gallery_control == view.lower_bound.description and not view.lower_bound.disabled
    assert view.lower_bound.value < view.lower_bound.max  # the gallery moves it to the right
    figure = view.snapshot()
    assert isinstance(figure, matplotlib.figure.Figure) and len(figure.axes) >= 7
    view.snapshot = lambda: figure  # drawn once: the bundle's PNG is this figure's
    bundle = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    assert "run the cell to interact" in bundle["text/plain"] and "VBox(" not in bundle["text/plain"]


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match="`model` must be one of .*; got 'LSTM'"):
        sw.StatesWidget(model="LSTM")
    with pytest.raises(ValueError, match="`reference` must be one of"):
        sw.settings_for(reference="GRU")
    with pytest.raises(ValueError, match="`sequence` must be one of .*; got 'ramp'"):
        sw.StatesWidget(sequence="ramp")
    with pytest.raises(ValueError, match=r"`lower_bound` \(HGRN's gamma\) must be a number in \[0, 1\); "
                                         r"got 1"):
        sw.settings_for(lower_bound=1)
    with pytest.raises(ValueError, match=r"`lower_bound` must be in \[0.0, 0.95\]"):
        sw.StatesWidget(lower_bound=0.99)
    with pytest.raises(ValueError, match=r"`window` must be in \[1, 32\]"):
        sw.StatesWidget(window=40)
    with pytest.raises(ValueError, match="`window` must be an int in"):
        views.trace(views.LOCAL, views.NOISE, window=0)
    with pytest.raises(TypeError, match="`window` must be an int"):
        sw.settings_for(window=2.5)
    with pytest.raises(ValueError, match=r"`x` must be \[T, F\] with T >= 1 and F = 4; got shape \(5, 3\)"):
        views.rg_lru_maps(torch.zeros(5, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="`x` must be a 2-D tensor"):
        views.hgrn_maps(torch.zeros(5, dtype=torch.float64), 0.5)
    with pytest.raises(ValueError, match=r"the gates `a` must lie in \(0, 1\]"):
        views.decay_field(torch.tensor([[0.5], [1.5]]))
    with pytest.raises(ValueError, match="`b` must have a's shape"):
        views.receptive_field(torch.ones(4, 2), torch.ones(4, 3))
    with pytest.raises(ValueError, match="`name` must be one of"):
        views.sequence("sawtooth")
    with pytest.raises(ValueError, match="`length` must be an int in"):
        views.sequence(views.COPY, 10)  # too short for the tokens and their copy
