"""The response-surface widget: what one neuron of each kind computes over a 2-D input, and how its
activation's shape changes while the network learns two interleaved spirals.

Four kinds of hidden neuron, each in a small network 2 -> 8 -> 1 trained briefly (`course.neurons.views`
trains them, cached; the widget only reads the recorded snapshots and trains nothing):
- linear + ReLU: relu(w . x + b), a half-plane's ramp;
- rational: R(w . x + b) with the learned safe rational R = P / (1 + |S|) (Delfosse et al. 2024,
  arXiv:2102.09407, section 2), started from leaky ReLU or tanh;
- KAN spline: phi_1j(x_1) + phi_2j(x_2), one learned B-spline function per edge (Liu et al. 2024,
  arXiv:2404.19756, eq. 2.10): an additive surface, with small or random starting coefficients;
- quadratic: relu((w_r . x + b_r)(w_g . x + b_g) + (x * x) . w_b + c) (Fan et al. 2023,
  arXiv:2110.06081, eq. 1): conic level sets, started linear (ReLinear) or with every term random.

Panels: the response surface of one hidden neuron (the one whose trained response varies most) over the
input square; the network's probability of class 1 with the training points and its 0.5 contour; the
activation's shape now (solid) against its start (dashed): R(z), the KAN neuron's two edge functions, or
the fixed ReLU; the training loss at every step with the recorded steps marked.

Controls: the neuron type; the rational's degree (enabled for the rational neuron) or the KAN's grid size
(enabled for the KAN); the initialisation (disabled for linear + ReLU, which has one); the training step
(a slider over the recorded snapshots, which the browser gallery moves).

The pieces are plain functions: `settings_for`, `applies`, `state_for`, `summary`, `panel_titles`,
`figure_traces`, `layout_updates` and `response_figure`.
"""
import textwrap
from dataclasses import dataclass

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from course.neurons import views
from course.neurons.views import (DEGREES, GRID_SIZES, INITS, KAN, LINEAR, NEURONS, RATIONAL, SNAPSHOT_STEPS,
                                  Snapshot, Training)
from course.widgets.view import (FitPlotsToWidth, View, control_layout, update_panels, update_traces,
                                 wrapping_row)

WHERE = "widgets.response"
CLASS_COLORS = ("#1f77b4", "#d62728")     # class 0, class 1 (the probability's colour scale's ends)
CURVE_COLORS = ("#2ca02c", "#9467bd")     # the activation's curves (the KAN's two edges)
LOSS_COLOR, MARK_COLOR = "#555555", "#ff7f0e"
RESPONSE_SCALE, PROBABILITY_SCALE = "Viridis", "RdBu_r"
STEP_LABEL = "training step"  # the slider the browser gallery moves
SLIDER = 300                  # a slider's least width
SURFACE_DOMAINS = ((0.0, 0.36), (0.55, 0.9))  # the two surfaces' x domains (their colour bars at the right)
RANGE_QUANTILES = (0.01, 0.99)  # the response's colour range: these quantiles of its values


@dataclass(frozen=True)
class Settings:
    """What the controls say."""

    kind: str = RATIONAL
    degree: int = 5                      # the rational's numerator degree m
    grid_size: int = 5                   # the KAN's grid intervals G
    init: str = views.LEAKY
    step: int = SNAPSHOT_STEPS[-1]


def settings_for(where: str = WHERE, **controls) -> Settings:
    """The controls as checked `Settings`; each bad one raises an error that names it."""
    s = Settings(**controls)
    views.check_choice(where, "kind", s.kind, NEURONS)
    views.check_choice(where, "degree", s.degree, DEGREES)
    views.check_choice(where, "grid_size", s.grid_size, GRID_SIZES)
    views.check_choice(where, "init", s.init, INITS[s.kind])
    views.check_choice(where, "step", s.step, SNAPSHOT_STEPS)
    return s


def applies(s: Settings) -> dict:
    """Which controls apply to the neuron type: {"degree", "grid_size", "init"} -> bool."""
    return {"degree": s.kind == RATIONAL, "grid_size": s.kind == KAN, "init": len(INITS[s.kind]) > 1}


def size_of(s: Settings):
    """The one size that applies to the type (None for linear + ReLU and quadratic)."""
    return {RATIONAL: s.degree, KAN: s.grid_size}.get(s.kind)


@dataclass(frozen=True, eq=False)
class State:
    """The settings, their training and the snapshot at the chosen step."""

    settings: Settings
    training: Training
    snapshot: Snapshot

    @property
    def start(self) -> Snapshot:
        return self.training.snapshots[0]


def state_for(s: Settings) -> State:
    """The recorded training of the settings (`views.training`, cached) at the chosen step."""
    s = settings_for(**vars(s))
    t = views.training(s.kind, size_of(s), s.init)
    return State(s, t, t.at(s.step))


def neuron_name(s: Settings) -> str:
    """The neuron type with the size and initialisation that apply to it."""
    if s.kind == RATIONAL:
        return f"rational (degrees {s.degree}/{s.degree - 1}, {s.init})"
    if s.kind == KAN:
        return f"KAN spline (grid G = {s.grid_size}, {s.init})"
    if s.kind == LINEAR:
        return "linear + ReLU"
    return f"quadratic ({s.init})"


def shape_change(state: State) -> float:
    """How far the activation moved from its start: max |f_now - f_start| over its curves' points."""
    return max(float((now[2] - start[2]).abs().max())
               for now, start in zip(state.snapshot.curves, state.start.curves))


def summary(state: State) -> str:
    """One line: the network, its loss and accuracy at the step, the hidden neuron shown, the shape change."""
    s, t, snap = state.settings, state.training, state.snapshot
    line = (f"{neuron_name(s)}: step {snap.step} of {SNAPSHOT_STEPS[-1]}, loss {snap.loss:.3f}, training "
            f"accuracy {snap.accuracy:.0%} ({t.parameters} parameters, {t.hidden_parameters} in the hidden "
            f"layer). Hidden neuron {t.unit + 1}'s response ranges over [{float(snap.hidden.min()):.2f}, "
            f"{float(snap.hidden.max()):.2f}]. ")
    if s.kind == LINEAR or s.kind == views.QUADRATIC:
        return line + "Its activation, ReLU, is fixed."
    what = "R(z)" if s.kind == RATIONAL else "its edge functions"
    return line + f"Since the start, {what} moved by up to {shape_change(state):.3f}."


def panel_titles(state: State) -> list:
    """The four panels' titles, in `response_figure`'s order (row by row)."""
    s, t = state.settings, state.training
    j = t.unit + 1
    shape = {RATIONAL: "the rational activation R(z)", KAN: f"neuron {j}'s edge functions φ_i,{j}"}.get(
        s.kind, "the activation: ReLU (fixed)")
    return [f"hidden neuron {j}'s response over (x1, x2)", "P(class 1), the points, its 0.5 contour",
            f"{shape}: now (solid), start (dashed)", "training loss (recorded steps marked)"]


def curve_props(curves: tuple, index: int, dash: str) -> dict:
    """A line trace's properties for curve `index` of the snapshot's curves (hidden if there is none)."""
    if index >= len(curves):
        return dict(x=[], y=[], visible=False, name="")
    name, z, value = curves[index]
    return dict(x=z.tolist(), y=value.tolist(), visible=True,
                name=f"{name}{' at the start' if dash == 'dash' else ''}")


def figure_traces(state: State) -> list:
    """The properties of every trace of `response_figure`, in trace order: the hidden neuron's surface,
    the probability, its 0.5 contour, the points of class 0 and 1, the two current curves, the two
    starting curves, the loss, the recorded steps and the current step."""
    t, snap = state.training, state.snapshot
    axis = views.surface_axis().tolist()
    x, y = views.task()
    steps = list(range(len(t.losses)))
    out = [dict(z=snap.hidden.tolist(), x=axis, y=axis),
           dict(z=snap.probability.tolist(), x=axis, y=axis),
           dict(z=snap.probability.tolist(), x=axis, y=axis)]
    for c in (0, 1):
        out.append(dict(x=x[y == c, 0].tolist(), y=x[y == c, 1].tolist()))
    for curves, dash in ((snap.curves, "solid"), (state.start.curves, "dash")):
        out.extend(curve_props(curves, i, dash) for i in (0, 1))
    out.append(dict(x=steps, y=list(t.losses)))
    out.append(dict(x=list(SNAPSHOT_STEPS), y=[s.loss for s in t.snapshots]))
    out.append(dict(x=[snap.step], y=[snap.loss]))
    return out


def response_range(snap: Snapshot) -> tuple:
    """The hidden neuron's colour range at the step: its response's quantiles RANGE_QUANTILES over the
    square (a learned rational can spike where few inputs fall; the colours saturate there)."""
    low, high = torch.quantile(snap.hidden.flatten(), torch.tensor(RANGE_QUANTILES)).tolist()
    return (low, high) if high > low else (low - 1.0, high + 1.0)


def layout_updates(state: State) -> dict:
    """What changes in the layout with the settings: the response's colour range, the curves' axes (the
    curves now and at the start) and the loss axis."""
    low, high = response_range(state.snapshot)
    values = torch.cat([c[2] for snap in (state.snapshot, state.start) for c in snap.curves])
    z = state.snapshot.curves[0][1]
    pad = 0.05 * max(float(values.max() - values.min()), 1e-3)
    return {"coloraxis_cmin": low, "coloraxis_cmax": high,
            "xaxis3_range": [float(z[0]), float(z[-1])],
            "yaxis3_range": [float(values.min()) - pad, float(values.max()) + pad],
            "yaxis4_range": [0.0, max(state.training.losses) * 1.05]}


def response_figure(state: State) -> go.Figure:
    """The four panels (plotly): the hidden neuron's surface and the probability of class 1 (top), the
    activation's shape and the loss (below)."""
    fig = make_subplots(rows=2, cols=2, row_heights=[0.6, 0.4], horizontal_spacing=0.12,
                        vertical_spacing=0.14, subplot_titles=panel_titles(state))
    low, high = fig.layout.yaxis.domain
    for col, domain in enumerate(SURFACE_DOMAINS, start=1):  # each surface leaves room for its colour bar
        fig.layout[f"xaxis{col if col > 1 else ''}"].domain = domain
        fig.layout.annotations[col - 1].x = sum(domain) / 2

    def bar(title, col):  # beside its surface, from its top (a narrow window shrinks the square surface)
        return dict(colorbar=dict(title=dict(text=title, side="top"), thickness=10, len=0.55 * (high - low),
                                  y=high, yanchor="top", x=SURFACE_DOMAINS[col - 1][1] + 0.01,
                                  xanchor="left"))

    hover = "x1 %{x:.2f}, x2 %{y:.2f}<br>%{z:.3g}<extra></extra>"
    fig.add_trace(go.Heatmap(coloraxis="coloraxis", hovertemplate=hover, name="response"), 1, 1)
    fig.add_trace(go.Heatmap(coloraxis="coloraxis2", hovertemplate=hover, name="P(class 1)"), 1, 2)
    fig.add_trace(go.Contour(contours=dict(start=0.5, end=0.5, size=1, coloring="none"), showscale=False,
                             line=dict(color="black", width=2), hoverinfo="skip", name="P = 0.5"), 1, 2)
    for c, color in enumerate(CLASS_COLORS):
        fig.add_trace(go.Scatter(mode="markers", name=f"class {c}", marker=dict(
            size=6, color=color, line=dict(color="white", width=1))), 1, 2)
    for dash in ("solid", "dash"):
        for color in CURVE_COLORS:
            fig.add_trace(go.Scatter(mode="lines", line=dict(color=color, dash=dash, width=2.5 if dash ==
                                                             "solid" else 1.5)), 2, 1)
    fig.add_trace(go.Scatter(mode="lines", line=dict(color=LOSS_COLOR), name="loss"), 2, 2)
    fig.add_trace(go.Scatter(mode="markers", marker=dict(color=LOSS_COLOR, size=7), name="recorded steps"),
                  2, 2)
    fig.add_trace(go.Scatter(mode="markers", marker=dict(color=MARK_COLOR, size=13, symbol="diamond"),
                             name="the step shown"), 2, 2)
    for trace_, props in zip(fig.data, figure_traces(state)):
        trace_.update(**props)
    fig.update_layout(
        coloraxis=dict(colorscale=RESPONSE_SCALE, **bar("h_j", 1)),
        coloraxis2=dict(colorscale=PROBABILITY_SCALE, cmin=0.0, cmax=1.0, **bar("P", 2)),
        template="plotly_white", height=820, autosize=True, margin=dict(l=10, r=10, t=40, b=40),
        legend=dict(orientation="h", x=0, y=-0.08, xanchor="left", yanchor="top"))
    fig.update_layout(**layout_updates(state))
    small = dict(title_font_size=11, title_standoff=4)
    limit = [-views.LIMIT, views.LIMIT]
    for col in (1, 2):
        # square surfaces: the x domain shrinks toward the colour bar, the y domain toward the title
        fig.update_xaxes(title_text="x1", range=limit, constrain="domain", constraintoward="right", row=1,
                         col=col, **small)
        fig.update_yaxes(title_text="x2", range=limit, scaleanchor=f"x{'' if col == 1 else 2}",
                         constrain="domain", constraintoward="top", row=1, col=col, **small)
    fig.update_xaxes(title_text="z (pre-activation, or the KAN's input x_i)", row=2, col=1, **small)
    fig.update_yaxes(title_text="activation", row=2, col=1, **small)
    fig.update_xaxes(title_text="step", range=[-2, SNAPSHOT_STEPS[-1] + 2], row=2, col=2, **small)
    fig.update_yaxes(title_text="binary cross-entropy", row=2, col=2, **small)
    fig.update_annotations(font_size=11)  # the subplot titles
    return fig


class ResponseWidget(View):
    """Controls (neuron type, rational degree, KAN grid size, initialisation, training step) over the four
    panels. The degree is enabled only for the rational neuron, the grid size only for the KAN, the
    initialisation only where there is a choice."""

    gallery_control = STEP_LABEL

    def __init__(self, kind: str = RATIONAL, degree: int = 5, grid_size: int = 5, init: str | None = None,
                 step: int = SNAPSHOT_STEPS[-1]):
        init = INITS[kind][0] if init is None and kind in INITS else init
        s = settings_for("ResponseWidget", kind=kind, degree=degree, grid_size=grid_size, init=init,
                         step=step)
        style = dict(continuous_update=False, style={"description_width": "initial"})
        self.kind = widgets.ToggleButtons(options=NEURONS, value=s.kind, description="neuron",
                                          style={"button_width": "118px"},
                                          layout=widgets.Layout(flex="0 0 auto"))
        self.init = widgets.Dropdown(options=INITS[s.kind], value=s.init, description="initialisation",
                                     layout=control_layout(300), style=style["style"])
        self.degree = widgets.SelectionSlider(options=DEGREES, value=s.degree,
                                              description="rational degree m (n = m − 1)",
                                              layout=control_layout(SLIDER), **style)
        self.grid_size = widgets.SelectionSlider(options=GRID_SIZES, value=s.grid_size,
                                                 description="KAN grid size G",
                                                 layout=control_layout(SLIDER), **style)
        self.step = widgets.SelectionSlider(options=SNAPSHOT_STEPS, value=s.step, description=STEP_LABEL,
                                            layout=control_layout(SLIDER), **style)
        self.summary = widgets.HTML()
        self._quiet = False
        state = self.state()
        self.figure = go.FigureWidget(response_figure(state))
        self.figure._config = {**self.figure._config, "responsive": True}  # follow the notebook's width
        for control in (self.kind, self.init, self.degree, self.grid_size, self.step):
            control.observe(self.update, names="value")
        self.widget = widgets.VBox([
            wrapping_row([self.kind, self.init]), wrapping_row([self.degree, self.grid_size]),
            wrapping_row([self.step]), self.summary, self.figure, FitPlotsToWidth()],
            layout=widgets.Layout(width="100%", overflow="auto"))
        self._show(state)

    def settings(self) -> Settings:
        return Settings(self.kind.value, self.degree.value, self.grid_size.value, self.init.value,
                        self.step.value)

    def state(self) -> State:
        return state_for(self.settings())

    def _show(self, state: State):
        on = applies(state.settings)
        self.degree.disabled = not on["degree"]
        self.grid_size.disabled = not on["grid_size"]
        self.init.disabled = not on["init"]
        update_traces(self.figure, figure_traces(state))
        update_panels(self.figure, layout_updates(state), panel_titles(state))
        self.summary.value = f"<b>{summary(state)}</b>"

    def update(self, change=None):
        if self._quiet:
            return
        if change is not None and change["owner"] is self.kind:
            self._quiet = True  # the initialisations are the type's own: one update for both
            try:
                self.init.options = INITS[self.kind.value]
                self.init.value = INITS[self.kind.value][0]
            finally:
                self._quiet = False
        self._show(self.state())

    def snapshot(self):
        """The four panels as a static matplotlib figure."""
        import matplotlib.pyplot as plt

        state = self.state()
        t, snap = state.training, state.snapshot
        titles = panel_titles(state)
        fig = plt.figure(figsize=(11, 9), layout="constrained")
        grid = fig.add_gridspec(2, 2, height_ratios=[0.58, 0.42])
        extent = [-views.LIMIT, views.LIMIT, -views.LIMIT, views.LIMIT]
        low, high = response_range(snap)
        ax = fig.add_subplot(grid[0, 0])
        image = ax.imshow(snap.hidden.numpy(), origin="lower", extent=extent, cmap="viridis", vmin=low,
                          vmax=high)
        fig.colorbar(image, ax=ax, label="h_j", fraction=0.05)
        ax.set(title=titles[0], xlabel="x1", ylabel="x2")
        ax = fig.add_subplot(grid[0, 1])
        image = ax.imshow(snap.probability.numpy(), origin="lower", extent=extent, cmap="RdBu_r", vmin=0,
                          vmax=1)
        axis = views.surface_axis().numpy()
        ax.contour(axis, axis, snap.probability.numpy(), levels=[0.5], colors="black", linewidths=1.5)
        x, y = views.task()
        for c, color in enumerate(CLASS_COLORS):
            ax.scatter(x[y == c, 0], x[y == c, 1], s=12, c=color, edgecolors="white", linewidths=0.5,
                       label=f"class {c}")
        fig.colorbar(image, ax=ax, label="P", fraction=0.05)
        ax.set(title=titles[1], xlabel="x1", ylabel="x2")
        ax.legend(fontsize=8, loc="lower right")
        for a in fig.axes[:3]:
            a.grid(False)
        ax = fig.add_subplot(grid[1, 0])
        for curves, style in ((snap.curves, "-"), (state.start.curves, "--")):
            for (name, z, value), color in zip(curves, CURVE_COLORS):
                ax.plot(z.numpy(), value.numpy(), style, color=color, lw=2 if style == "-" else 1,
                        label=name if style == "-" else None)
        ax.set(title=titles[2], xlabel="z", ylabel="activation")
        ax.legend(fontsize=8)
        ax = fig.add_subplot(grid[1, 1])
        ax.plot(range(len(t.losses)), t.losses, color=LOSS_COLOR)
        ax.plot(SNAPSHOT_STEPS, [s.loss for s in t.snapshots], "o", color=LOSS_COLOR, ms=5)
        ax.plot([snap.step], [snap.loss], "D", color=MARK_COLOR, ms=9)
        ax.set(title=titles[3], xlabel="step", ylabel="binary cross-entropy", ylim=(0, max(t.losses) * 1.05))
        for a in fig.axes:
            a.title.set_fontsize(9)
        fig.supxlabel(textwrap.fill(summary(state), 150), fontsize=8)
        return fig


def gallery() -> ResponseWidget:
    """The widget on its trained snapshots, for the browser gallery: the rational neuron (degrees 5/4, from
    leaky ReLU) one recorded step before the end; the gallery moves the training step."""
    return ResponseWidget(step=SNAPSHOT_STEPS[-2])

