"""The state widget: what a sequence model keeps of its input, step by step, two models side by side.

Every recurrent model of the family runs, per channel, h_t = a_t h_{t-1} + b_t v_t (Sieber et al. 2024,
arXiv:2405.15731: attention, SSMs and RNNs as one linear time-varying system); the widget draws, for a
chosen model and a model to compare it with (`course.ssm.views`, fixed seeded weights, nothing trained):
- the hidden state h [T, D] over time (local attention: its output, it keeps no state);
- the decay gates a_t [T, D]: input-dependent for the RG-LRU (Griffin, arXiv:2402.19427), HGRN
  (arXiv:2311.04823, with its lower bound gamma) and the selective SSM (Mamba, arXiv:2312.00752), fixed
  for retention (arXiv:2307.08621) and 1 for linear attention (arXiv:2006.16236); local attention has none;
- the effective receptive field |d h_t / d v_s| [T, T] (averaged over the channels): for a recurrence
  prod_{k=s+1..t} a_k * b_s, for local attention its softmax weights inside the window, zero outside;
- the last position's receptive field against s for both models, with each one's memory half-life.

Controls: the model, the model compared with it, the input sequence (a spike, noise, a step, a copy-task
sequence), HGRN's gate lower bound gamma (enabled when HGRN is shown) and the local attention's window
(enabled when local attention is shown).

The pieces are plain functions: `settings_for`, `compare` (both models' traces for the settings),
`summary`, `panel_titles`, `figure_traces` and `states_figure`.
"""
import math
import textwrap
from dataclasses import dataclass, replace

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from course.checks import check_int
from course.ssm import views
from course.ssm.views import HGRN, LOCAL, MODELS, SEQUENCES, Trace, trace
from course.widgets.view import (FitPlotsToWidth, View, control_layout, update_panels, update_traces,
                                 wrapping_row)

WHERE = "widgets.states"
LOWER_BOUNDS = (0.0, 0.95, 0.05)  # the gate lower bound slider: min, max, step
WINDOWS = (1, views.T // 2)       # the window slider: min, max
FIELD_FLOOR = -6.0                # log10 of the smallest receptive field the colours tell apart
CHOSEN, REFERENCE = "#d62728", "#1f77b4"  # the two models' lines
STATE_SCALE, GATE_SCALE, FIELD_SCALE = "RdBu_r", "Viridis", "Magma"
LOWER_BOUND_LABEL = "gate lower bound γ (HGRN)"  # the slider the browser gallery moves


@dataclass(frozen=True)
class Settings:
    """What the controls say."""

    model: str = HGRN
    reference: str = views.RETENTION
    sequence: str = views.COPY
    lower_bound: float = 0.5   # HGRN's gamma
    window: int = 8            # local attention's window


def settings_for(where: str = WHERE, **controls) -> Settings:
    """The controls as checked `Settings`; each bad one raises an error that names it."""
    s = Settings(**controls)
    views.check_choice(where, "model", s.model, MODELS)
    views.check_choice(where, "reference", s.reference, MODELS)
    views.check_choice(where, "sequence", s.sequence, SEQUENCES)
    views.check_lower_bound(where, s.lower_bound)
    check_int(where, "window", s.window, low=1)
    return replace(s, lower_bound=round(float(s.lower_bound), 6))


@dataclass(frozen=True, eq=False)
class Comparison:
    """Both models on the chosen sequence."""

    settings: Settings
    chosen: Trace
    reference: Trace


def compare(s: Settings) -> Comparison:
    """Both models' gates, states and receptive fields for the settings (`course.ssm.views.trace`,
    cached per model, sequence and the one control that applies to it)."""
    s = settings_for(**vars(s))

    def one(model):  # a control that does not apply to the model is not part of its key
        return trace(model, s.sequence, s.lower_bound if model == HGRN else 0.5,
                     s.window if model == LOCAL else 8)

    return Comparison(s, one(s.model), one(s.reference))


def applies(s: Settings) -> dict:
    """Which of the two model-specific controls apply: {"lower_bound": bool, "window": bool}."""
    return {"lower_bound": HGRN in (s.model, s.reference), "window": LOCAL in (s.model, s.reference)}


def model_name(t: Trace) -> str:
    """The model with the one control that applies to it."""
    if t.model == HGRN:
        return f"HGRN (lower bound {t.lower_bound:g})"
    if t.model == LOCAL:
        return f"local attention (window {t.window})"
    return t.model


def describe(t: Trace) -> str:
    """The numbers of one model: mean gate, memory half-life at the last position, the state's range."""
    T = len(t.x)
    if t.gates is None:
        seen = min(t.window, T)
        return (f"no gate; the last position sees exactly its last {seen} input{'s' * (seen > 1)} "
                f"(its field is 0 before them); |output| up to {float(t.states.abs().max()):.3g}")
    life = t.half_life
    memory = (f"memory half-life {life} step{'s' * (life != 1)}" if life is not None else
              "no decay (the state keeps every input)" if float(t.gates.min()) == 1 else
              f"memory half-life over {T - 1} steps")
    return f"mean gate {t.mean_gate:.3g}, {memory}, |h| up to {float(t.states.abs().max()):.3g}"


def summary(c: Comparison) -> str:
    """One line: the sequence, then each model's numbers."""
    return (f"{c.settings.sequence} sequence (T = {len(c.chosen.x)}, {views.CHANNELS} channels). "
            f"{model_name(c.chosen)}: {describe(c.chosen)}. Compared with {model_name(c.reference)}: "
            f"{describe(c.reference)}.")


def short_name(t: Trace) -> str:
    """The model's name for a panel title (a column of the figure is narrow at 1000 px)."""
    return {views.RG_LRU: "RG-LRU", HGRN: f"HGRN (γ {t.lower_bound:g})", views.SELECTIVE: "selective SSM",
            views.RETENTION: "retention", views.LINEAR: "linear attention",
            LOCAL: f"local attention (w {t.window})"}[t.model]


def panel_titles(c: Comparison) -> list:
    """The seven panels' titles, in `states_figure`'s order (row by row)."""
    pair = (c.chosen, c.reference)
    return ([f"{'output' if t.gates is None else 'state h_t'}: {short_name(t)}" for t in pair]
            + [f"{'gates a_t' if t.gates is not None else 'no decay gate'}: {short_name(t)}" for t in pair]
            + [f"field |dh_t/dv_s|: {short_name(t)}" for t in pair]
            + ["the last position's receptive field against the input position s"])


def finite_or_none(t: torch.Tensor) -> list:
    """A tensor as (nested) lists with None where it is not finite: plotly's gaps."""
    return [finite_or_none(row) for row in t] if t.dim() > 1 else [
        v if math.isfinite(v) else None for v in t.tolist()]


def log_field(field: torch.Tensor) -> torch.Tensor:
    """log10 of a receptive field, floored at FIELD_FLOOR; NaN (a gap) where it is 0 (s > t, outside a
    window, or underflowed)."""
    return torch.where(field > 0, field.clamp_min(1e-300).log10().clamp_min(FIELD_FLOOR), math.nan)


def half_life_line(t: Trace, top: float) -> dict:
    """A vertical line at the input position s = T - 1 - half-life (hidden where there is none)."""
    life = t.half_life
    if life is None:
        return dict(x=[], y=[], visible=False)
    s = len(t.x) - 1 - life
    return dict(x=[s, s], y=[10 ** FIELD_FLOOR, top], visible=True)


def figure_traces(c: Comparison) -> list:
    """The properties of every trace of `states_figure`, in trace order: the states, gates and fields of
    the chosen model and the reference (heatmaps; time t across, channels up; the field with s across
    and t down), the last position's fields, then the half-life lines."""
    pair = (c.chosen, c.reference)
    T = len(c.chosen.x)
    out = []
    for t in pair:
        out.append(dict(z=finite_or_none(t.states.T), x=list(range(T))))
    for t in pair:
        z = t.gates.T if t.gates is not None else torch.full((views.CHANNELS, T), math.nan)
        out.append(dict(z=finite_or_none(z), x=list(range(T))))
    for t in pair:
        out.append(dict(z=finite_or_none(log_field(t.field_mean)), x=list(range(T)), y=list(range(T))))
    last = [t.field_mean[-1] for t in pair]
    top = max(float(f.max()) for f in last) * 1.5
    for t, f in zip(pair, last):
        out.append(dict(x=list(range(T)), y=finite_or_none(torch.where(f > 0, f, math.nan)),
                        name=model_name(t)))
    for t in pair:
        out.append(dict(half_life_line(t, top), name=f"half-life: {model_name(t)}"))
    return out


def color_ranges(c: Comparison) -> dict:
    """The colour axes' ranges: each state's own (symmetric), the gates' and the fields' shared."""
    ranges = {}
    for axis, t in (("coloraxis", c.chosen), ("coloraxis2", c.reference)):
        high = float(t.states.abs().max())
        ranges[axis] = (-high, high) if high > 0 else (-1.0, 1.0)
    gates = [float(t.gates.min()) for t in (c.chosen, c.reference) if t.gates is not None]
    low = min(gates) if gates else 0.0
    ranges["coloraxis3"] = (low, 1.0) if low < 1 else (0.0, 1.0)
    top = max(float(log_field(t.field_mean).nan_to_num(FIELD_FLOOR).max()) for t in (c.chosen, c.reference))
    ranges["coloraxis4"] = (FIELD_FLOOR, max(top, FIELD_FLOOR + 1))
    return ranges


def layout_updates(c: Comparison) -> dict:
    """What changes in the layout with the settings: the colour ranges and the line panel's y range."""
    updates = {f"{axis}_cmin": low for axis, (low, _) in color_ranges(c).items()}
    updates.update({f"{axis}_cmax": high for axis, (_, high) in color_ranges(c).items()})
    top = max(float(t.field_mean[-1].max()) for t in (c.chosen, c.reference)) * 1.5
    updates["yaxis7_range"] = [FIELD_FLOOR, math.log10(top) if top > 0 else 0.0]
    return updates


def states_figure(c: Comparison) -> go.Figure:
    """The seven panels (plotly): state, gates and receptive field of the chosen model (left) and of the
    reference (right), the last position's receptive field of both below (log scale)."""
    fig = make_subplots(rows=4, cols=2, specs=[[{}, {}], [{}, {}], [{}, {}], [{"colspan": 2}, None]],
                        row_heights=[0.2, 0.2, 0.34, 0.26], horizontal_spacing=0.13, vertical_spacing=0.075,
                        subplot_titles=panel_titles(c))
    right = fig.layout.xaxis.domain[1]  # the left column's right edge

    def bar(title, row, x):
        low, high = fig.layout[f"yaxis{2 * row - 1 if row > 1 else ''}"].domain
        return dict(colorbar=dict(title=dict(text=title, side="right"), thickness=10, len=high - low,
                                  y=(low + high) / 2, x=x))

    hover = "t %{x}, channel %{y}<br>%{z:.3g}<extra></extra>"
    for col, axis in ((1, "coloraxis"), (2, "coloraxis2")):
        fig.add_trace(go.Heatmap(coloraxis=axis, hovertemplate=hover, name="state"), 1, col)
    for col in (1, 2):
        fig.add_trace(go.Heatmap(coloraxis="coloraxis3", hovertemplate=hover, name="gates"), 2, col)
    for col in (1, 2):
        fig.add_trace(go.Heatmap(coloraxis="coloraxis4", name="field", hovertemplate=(
            "input s %{x}, position t %{y}<br>log10 |dh_t/dv_s| %{z:.3g}<extra></extra>")), 3, col)
    for color in (CHOSEN, REFERENCE):
        fig.add_trace(go.Scatter(mode="lines+markers", line=dict(color=color), marker=dict(size=4)), 4, 1)
    for color in (CHOSEN, REFERENCE):
        fig.add_trace(go.Scatter(mode="lines", line=dict(color=color, dash="dash", width=1.5)), 4, 1)
    for trace_, props in zip(fig.data, figure_traces(c)):
        trace_.update(**props)
    fig.update_layout(
        coloraxis=dict(colorscale=STATE_SCALE, **bar("h", 1, right + 0.01)),
        coloraxis2=dict(colorscale=STATE_SCALE, **bar("h", 1, 1.01)),
        coloraxis3=dict(colorscale=GATE_SCALE, **bar("a_t", 2, 1.01)),
        coloraxis4=dict(colorscale=FIELD_SCALE, **bar("log10", 3, 1.01)),
        template="plotly_white", height=980, autosize=True, margin=dict(l=10, r=10, t=40, b=40),
        legend=dict(orientation="h", x=0, y=-0.06, xanchor="left", yanchor="top"))
    fig.update_layout(**layout_updates(c))
    T, D = len(c.chosen.x), views.CHANNELS
    small = dict(title_font_size=11, title_standoff=4)
    fig.update_xaxes(title_text="time t", range=[-0.5, T - 0.5], row=2, **small)
    fig.update_xaxes(range=[-0.5, T - 0.5], row=1)
    for row in (1, 2):
        fig.update_yaxes(range=[-0.5, D - 0.5], row=row)
        fig.update_yaxes(title_text="channel", row=row, col=1, **small)
    fig.update_xaxes(title_text="input position s", range=[-0.5, T - 0.5], row=3, **small)
    fig.update_yaxes(range=[T - 0.5, -0.5], row=3)  # t down, as a matrix
    fig.update_yaxes(title_text="position t", row=3, col=1, **small)
    fig.update_xaxes(title_text="input position s", range=[-0.5, T - 0.5], row=4, col=1, **small)
    fig.update_yaxes(title_text=f"|dh_{T - 1}/dv_s|", type="log", row=4, col=1, **small)
    fig.update_annotations(font_size=11)  # the subplot titles
    return fig


class StatesWidget(View):
    """Controls (model, the model compared with it, sequence, HGRN's gate lower bound, local attention's
    window) over the seven panels. The gate lower bound is enabled only when HGRN is shown, the window
    only when local attention is."""

    gallery_control = LOWER_BOUND_LABEL

    def __init__(self, model: str = HGRN, reference: str = views.RETENTION, sequence: str = views.COPY,
                 lower_bound: float = 0.5, window: int = 8):
        where = "StatesWidget"
        s = settings_for(where, model=model, reference=reference, sequence=sequence,
                         lower_bound=lower_bound, window=window)
        if not LOWER_BOUNDS[0] <= s.lower_bound <= LOWER_BOUNDS[1]:
            raise ValueError(f"{where}: `lower_bound` must be in [{LOWER_BOUNDS[0]}, {LOWER_BOUNDS[1]}] "
                             f"(the slider's range); got {lower_bound!r}.")
        if not WINDOWS[0] <= s.window <= WINDOWS[1]:
            raise ValueError(f"{where}: `window` must be in [{WINDOWS[0]}, {WINDOWS[1]}] (the slider's "
                             f"range); got {window!r}.")
        style = dict(continuous_update=False, style={"description_width": "initial"})
        self.model = widgets.Dropdown(options=MODELS, value=s.model, description="model",
                                      layout=control_layout(280), style=style["style"])
        self.reference = widgets.Dropdown(options=MODELS, value=s.reference, description="compare with",
                                          layout=control_layout(300), style=style["style"])
        self.sequence = widgets.ToggleButtons(options=SEQUENCES, value=s.sequence, description="sequence",
                                              style={"button_width": "82px"},
                                              layout=widgets.Layout(flex="0 0 auto"))
        low, high, step = LOWER_BOUNDS
        self.lower_bound = widgets.FloatSlider(value=s.lower_bound, min=low, max=high, step=step,
                                               description=LOWER_BOUND_LABEL,
                                               layout=control_layout(), **style)
        self.window = widgets.IntSlider(value=s.window, min=WINDOWS[0], max=WINDOWS[1],
                                        description="window size (local attention)",
                                        layout=control_layout(), **style)
        self.summary = widgets.HTML()
        c = self.state()
        self.figure = go.FigureWidget(states_figure(c))
        self.figure._config = {**self.figure._config, "responsive": True}  # follow the notebook's width
        for control in (self.model, self.reference, self.sequence, self.lower_bound, self.window):
            control.observe(self.update, names="value")
        self.widget = widgets.VBox([
            wrapping_row([self.model, self.reference]), wrapping_row([self.sequence]),
            wrapping_row([self.lower_bound, self.window]), self.summary, self.figure, FitPlotsToWidth()],
            layout=widgets.Layout(width="100%", overflow="auto"))
        self._show(c)

    def settings(self) -> Settings:
        return Settings(self.model.value, self.reference.value, self.sequence.value,
                        self.lower_bound.value, self.window.value)

    def state(self) -> Comparison:
        return compare(self.settings())

    def _show(self, c: Comparison):
        on = applies(c.settings)
        self.lower_bound.disabled = not on["lower_bound"]
        self.window.disabled = not on["window"]
        update_traces(self.figure, figure_traces(c))
        update_panels(self.figure, layout_updates(c), panel_titles(c))
        self.summary.value = f"<b>{summary(c)}</b>"

    def update(self, change=None):
        self._show(self.state())

    def snapshot(self):
        """The seven panels as a static matplotlib figure."""
        import matplotlib.pyplot as plt
        from matplotlib.ticker import LogFormatter

        c = self.state()
        ranges = color_ranges(c)
        titles = panel_titles(c)
        fig = plt.figure(figsize=(11, 11), layout="constrained")
        grid = fig.add_gridspec(4, 2, height_ratios=[0.2, 0.2, 0.34, 0.26])
        pair = (c.chosen, c.reference)
        for col, t in enumerate(pair):
            panels = (
                (t.states.T, ranges["coloraxis" if col == 0 else "coloraxis2"], "RdBu_r", "h", "time t"),
                (t.gates.T if t.gates is not None else torch.full((views.CHANNELS, len(t.x)), math.nan),
                 ranges["coloraxis3"], "viridis", "a_t", "time t"),
                (log_field(t.field_mean), ranges["coloraxis4"], "magma", "log10", "input position s"))
            for row, (z, (low, high), cmap, label, xlabel) in enumerate(panels):
                ax = fig.add_subplot(grid[row, col])
                image = ax.imshow(z.numpy(), aspect="auto", cmap=cmap, vmin=low, vmax=high,
                                  origin="upper" if row == 2 else "lower", interpolation="nearest")
                fig.colorbar(image, ax=ax, label=label, fraction=0.05)
                ax.set_title(titles[2 * row + col], fontsize=9)
                ax.set(xlabel=xlabel, ylabel="position t" if row == 2 else "channel")
                ax.grid(False)
        ax = fig.add_subplot(grid[3, :])
        T = len(c.chosen.x)
        for t, color in zip(pair, (CHOSEN, REFERENCE)):
            f = t.field_mean[-1]
            ax.semilogy(torch.arange(T)[f > 0].numpy(), f[f > 0].numpy(), "o-", ms=3, color=color,
                        label=model_name(t))
            if t.half_life is not None:
                ax.axvline(T - 1 - t.half_life, color=color, ls="--", lw=1)
        ax.set_ylim(bottom=10 ** FIELD_FLOOR)
        ax.yaxis.set_major_formatter(LogFormatter())  # plain 1e-05, not mathtext (faster to draw)
        ax.set(title=titles[-1], xlabel="input position s", ylabel=f"|dh_{T - 1}/dv_s|")
        ax.legend(fontsize=8)
        fig.supxlabel(textwrap.fill(summary(c), 150), fontsize=8)
        return fig


def gallery() -> StatesWidget:
    """The widget on its generated sequences, for the browser gallery: HGRN (lower bound 0.5) against
    retention on the copy-task sequence; the gallery moves the gate lower bound."""
    return StatesWidget()
