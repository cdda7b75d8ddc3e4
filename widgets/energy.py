"""The energy widget: a Hopfield network retrieving a stored image from a corrupted query, update by
update, with the energy after each; where retrieval fails; and the energy surface of a 2-D toy.

What it draws (the logic is `course.hopfield.views`; the widget computes nothing else and trains nothing):
- the query (the first stored pattern with noise or a mask) and the state after each of the STEPS
  updates, as images: the classical network's asynchronous sweeps (Hopfield 1982, Hebb's rule), or the
  modern network's updates xi <- X^T softmax(beta X xi) (Ramsauer et al. 2020, arXiv:2008.02217, eq. 3)
  or with sparsemax in place of softmax (Hu et al. 2023; STanHop, arXiv:2312.17346);
- the energy after each update (the classical -1/2 s^T W s, eq. 2 of Ramsauer et al., or the sparse
  energy), which never rises, and the overlap m = xi . x_1 / D with the stored pattern;
- the stored patterns, the one the query comes from outlined;
- a 2-D toy: four points, the modern energy on a grid (log10, drawn with the landscape widget's pieces,
  `course.widgets.landscape.landscape_traces`) and a query's path on it, at the same beta relative to
  the patterns' squared norm (beta * D).
Retrieval fails where the papers say: the classical network beyond its capacity (about 0.138 D random
patterns; correlated glyph images fail much earlier), the modern network at small beta, whose fixed
points are averages of many patterns (metastable states, Ramsauer et al. section 2).

Controls: classical or modern; softmax or sparsemax and beta (modern only: disabled in classical mode);
the pattern set and the number of stored patterns; the corruption and its amount.

The pieces are plain functions: `retrieval_for(Settings)`, `summary`, `mosaic`, `figure_traces`,
`layout_updates` and `energy_figure`.
"""
import math
import textwrap
from dataclasses import dataclass, replace

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from course.checks import check_int
from course.hopfield import views
from course.hopfield.views import (CLASSICAL, GLYPH_SET, MODERN, NOISE, SIDE, SOFTMAX, STEPS, TOY_PATTERNS,
                                   Retrieval, Toy)
from course.widgets.landscape import PATH_COLORS, landscape_traces, path_symbols
from course.widgets.view import (FitPlotsToWidth, View, control_layout, update_panels, update_traces,
                                 wrapping_row)

WHERE = "widgets.energy"
BETAS = (-3.0, 0.5, 0.1)   # the beta slider: log10 min, log10 max, step
AMOUNTS = (0.0, 0.5, 0.05)  # the corruption slider: min, max, step
PER_ROW = 16               # stored patterns per row of the mosaic (32 at most: two rows)
PIXELS = [[0.0, "#ffffff"], [0.5, "#8c8c8c"], [1.0, "#000000"]]  # -1 white, 0 (masked) grey, +1 black
FRAME = "#6baed6"          # the frame of each image of a mosaic
TARGET = "#d62728"         # the stored pattern the query comes from
ENERGY, OVERLAP = "#1f77b4", "#ff7f0e"
BETA_LABEL = "β (inverse temperature)"  # the slider the browser gallery moves
SLIDER = 360               # a slider's least width: its track stays usable beside its label


@dataclass(frozen=True)
class Settings:
    """What the controls say."""

    kind: str = MODERN
    weighting: str = SOFTMAX
    beta: float = 0.3
    pattern_set: str = GLYPH_SET
    n_patterns: int = 8
    corruption: str = NOISE
    amount: float = 0.15
    seed: int = 0


def settings_for(where: str = WHERE, **controls) -> Settings:
    """The controls as checked `Settings`; each bad one raises an error that names it."""
    s = Settings(**controls)
    views.check_choice(where, "kind", s.kind, views.KINDS)
    views.check_choice(where, "weighting", s.weighting, views.WEIGHTINGS)
    beta = views.check_beta(where, s.beta)
    views.check_choice(where, "pattern_set", s.pattern_set, views.PATTERN_SETS)
    check_int(where, "n_patterns", s.n_patterns, low=1, high=views.MAX_PATTERNS[s.pattern_set])
    views.check_choice(where, "corruption", s.corruption, views.CORRUPTIONS)
    amount = views.check_amount(where, s.amount)
    check_int(where, "seed", s.seed, low=0)
    return replace(s, beta=round(beta, 9), amount=round(amount, 9))


def applies(s: Settings) -> dict:
    """Which controls apply: beta and the weighting only to the modern network."""
    return {"beta": s.kind == MODERN, "weighting": s.kind == MODERN}


@dataclass(frozen=True, eq=False)
class State:
    settings: Settings
    retrieval: Retrieval
    toy: Toy


def retrieval_for(s: Settings) -> State:
    """The retrieval and the 2-D toy for the settings (the toy at beta * D, `views.toy_beta`)."""
    s = settings_for(**vars(s))
    r = views.retrieval_steps(s.kind, s.weighting, s.beta, s.n_patterns, s.corruption, s.amount, s.seed,
                              s.pattern_set)
    return State(s, r, views.toy(s.weighting, views.toy_beta(s.beta)))


def summary(state: State) -> str:
    """The retrieval's line, and in modern mode where the toy's query ends."""
    line = views.summary(state.retrieval)
    if state.settings.kind == MODERN:
        line += f" In 2-D (β·D = {state.toy.beta:.3g}), {views.toy_text(state.toy)}."
    return line


def mosaic(images: torch.Tensor, per_row: int) -> list:
    """Images [K, D] as one grid of SIDE x SIDE tiles, per_row to a row, one gap pixel (None) between
    tiles; rows top down as plotly's z, which the figure's reversed y axis shows. -> nested lists"""
    K = len(images)
    rows = max(1, math.ceil(K / per_row))
    cols = min(K, per_row) if K else 1
    out = torch.full((rows * (SIDE + 1) - 1, cols * (SIDE + 1) - 1), math.nan, dtype=torch.float64)
    for k, image in enumerate(images):
        r, c = divmod(k, per_row)
        out[r * (SIDE + 1): r * (SIDE + 1) + SIDE, c * (SIDE + 1): c * (SIDE + 1) + SIDE] = \
            image.view(SIDE, SIDE)
    return [[v if math.isfinite(v) else None for v in row] for row in out.tolist()]


def tile_centres(K: int) -> list:
    """The x of each tile's centre in a one-row mosaic of K tiles."""
    return [k * (SIDE + 1) + (SIDE - 1) / 2 for k in range(K)]


def panel_titles(state: State) -> list:
    r = state.retrieval
    net = ("classical network (asynchronous sweeps)" if r.kind == CLASSICAL else
           f"modern network ({r.weighting}, β {r.beta:.3g})")
    return [f"the query, then the state after each update: {net}",
            f"energy {views.energy_name(r)} and overlap m with pattern 1, after each update",
            f"the {len(r.patterns)} stored patterns (pattern 1, outlined, is corrupted into the query)",
            f"2-D toy, modern network ({state.toy.weighting}, β·D = {state.toy.beta:.3g}): "
            "log10 energy and a query's path"]


def figure_traces(state: State) -> list:
    """The properties of every trace of `energy_figure`, in trace order: the steps' mosaic, the energy,
    the overlap, the stored patterns' mosaic, then the toy's contour, its path and its stored points."""
    r, t = state.retrieval, state.toy
    steps = list(range(STEPS + 1))
    toy = landscape_traces(t.surface, t.alphas, t.betas, {"query's path": (t.path, t.path_energies)})
    symbols, sizes = path_symbols(len(t.path))
    return [dict(z=mosaic(r.states, STEPS + 1)),
            dict(x=steps, y=r.energies.tolist(), name=f"energy {views.energy_name(r)}"),
            dict(x=steps, y=r.overlaps.tolist(), name="overlap m with pattern 1"),
            dict(z=mosaic(r.patterns, PER_ROW)),
            toy[1],
            dict(toy[3], marker=dict(color=PATH_COLORS[0], symbol=symbols, size=sizes,
                                     line=dict(width=0.5, color="white"))),
            dict(x=TOY_PATTERNS[:, 0].tolist(), y=TOY_PATTERNS[:, 1].tolist(), name="stored points",
                 text=[str(k + 1) for k in range(len(TOY_PATTERNS))])]


def target_box() -> dict:
    """The outline of pattern 1 in the stored mosaic (axes x3, y4)."""
    return dict(type="rect", xref="x3", yref="y4", x0=-0.5, y0=-0.5, x1=SIDE - 0.5, y1=SIDE - 0.5,
                line=dict(color=TARGET, width=3), fillcolor="rgba(0,0,0,0)")


def tile_corners(K: int, per_row: int) -> list:
    """The (x, y) of each tile's top-left corner in a mosaic of K tiles, per_row to a row."""
    return [((k % per_row) * (SIDE + 1) - 0.5, (k // per_row) * (SIDE + 1) - 0.5) for k in range(K)]


def tile_frames(xref: str, yref: str, K: int, per_row: int) -> list:
    """A thin frame around each of a mosaic's K tiles (white images on the white gaps stay apart)."""
    return [dict(type="rect", xref=xref, yref=yref, x0=x, y0=y, x1=x + SIDE, y1=y + SIDE,
                 line=dict(color=FRAME, width=1), fillcolor="rgba(0,0,0,0)")
            for x, y in tile_corners(K, per_row)]


def layout_updates(state: State) -> dict:
    """What changes in the layout with the settings: the axes' ranges, the tick labels of the
    steps, the energy's title, the mosaic's background and outline."""
    r = state.retrieval
    M = len(r.patterns)
    rows, cols = max(1, math.ceil(M / PER_ROW)), min(M, PER_ROW)
    width = (STEPS + 1) * (SIDE + 1) - 1
    e = r.energies
    low, high = float(e.min()), float(e.max())
    pad = 0.08 * (high - low) if high > low else max(1.0, abs(high)) * 0.1
    m = r.overlaps
    return {
        "xaxis_range": [-0.5, width - 0.5], "yaxis_range": [SIDE - 0.5, -0.5],
        "xaxis_tickvals": tile_centres(STEPS + 1),
        "xaxis_ticktext": ["query", *[str(k) for k in range(1, STEPS + 1)]],
        "yaxis2_range": [low - pad, high + pad], "yaxis2_title_text": views.energy_name(r),
        "yaxis3_range": [min(-0.05, float(m.min()) - 0.05), 1.05],
        "xaxis3_range": [-0.5, cols * (SIDE + 1) - 1.5], "yaxis4_range": [rows * (SIDE + 1) - 1.5, -0.5],
        "shapes": [*tile_frames("x", "y", STEPS + 1, STEPS + 1), *tile_frames("x3", "y4", M, PER_ROW),
                   target_box()],
    }


def energy_figure(state: State) -> go.Figure:
    """The four panels (plotly), one column so that they read at any width: the steps' images, the
    energy and overlap against the update, the stored patterns, the 2-D toy."""
    fig = make_subplots(rows=4, cols=1, row_heights=[0.14, 0.23, 0.14, 0.49], vertical_spacing=0.07,
                        specs=[[{}], [{"secondary_y": True}], [{}], [{}]], subplot_titles=panel_titles(state))
    pixel = dict(coloraxis="coloraxis", hovertemplate="pixel %{z:.2f}<extra></extra>", name="pixels")
    fig.add_trace(go.Heatmap(**pixel), 1, 1)
    fig.add_trace(go.Scatter(mode="lines+markers", line=dict(color=ENERGY), marker=dict(size=7)), 2, 1)
    fig.add_trace(go.Scatter(mode="lines+markers", line=dict(color=OVERLAP, dash="dot"), marker=dict(size=6)),
                  2, 1, secondary_y=True)
    fig.add_trace(go.Heatmap(**pixel), 3, 1)
    toy_top = fig.layout.yaxis5.domain
    fig.add_trace(go.Contour(colorscale="Viridis", ncontours=24, line=dict(width=0.5), name="log10 energy",
                             hovertemplate="(%{x:.2f}, %{y:.2f})<br>log10 E %{z:.3g}<extra></extra>",
                             colorbar=dict(title=dict(text="log10 E", side="right"), thickness=12,
                                           len=toy_top[1] - toy_top[0], y=sum(toy_top) / 2, x=1.01)), 4, 1)
    fig.add_trace(go.Scatter(mode="lines+markers", line=dict(color=PATH_COLORS[0], width=3)), 4, 1)
    fig.add_trace(go.Scatter(mode="markers+text", textposition="top center", marker=dict(
        symbol="x", size=11, color="white", line=dict(width=1.5, color="black")),
        textfont=dict(color="white")), 4, 1)
    for trace, props in zip(fig.data, figure_traces(state)):
        trace.update(**props)
    top = fig.layout.yaxis.domain
    fig.update_layout(
        coloraxis=dict(colorscale=PIXELS, cmin=-1, cmax=1, colorbar=dict(
            title=dict(text="pixel", side="right"), thickness=10, len=top[1] - top[0] + 0.02,
            y=sum(top) / 2, x=1.01, tickvals=[-1, 0, 1])),
        template="plotly_white", height=1000, autosize=True, margin=dict(l=10, r=10, t=40, b=40),
        legend=dict(orientation="h", x=0, y=-0.04, xanchor="left", yanchor="top"))
    # square pixels; an image narrower than its row's height sits at the top, under its title
    image_axes = dict(showgrid=False, zeroline=False, constrain="domain")
    fig.update_xaxes(row=1, col=1, **image_axes)
    fig.update_yaxes(row=1, col=1, scaleanchor="x", constraintoward="top", showticklabels=False, **image_axes)
    fig.update_xaxes(row=3, col=1, showticklabels=False, **image_axes)
    fig.update_yaxes(row=3, col=1, scaleanchor="x3", constraintoward="top", showticklabels=False,
                     **image_axes)
    fig.update_xaxes(row=2, col=1, title_text="update (0: the query)", dtick=1, range=[-0.3, STEPS + 0.3],
                     title_standoff=4)
    fig.update_yaxes(row=2, col=1, secondary_y=False, title_font_color=ENERGY)
    fig.update_yaxes(row=2, col=1, secondary_y=True, title_text="overlap m", showgrid=False, dtick=0.25,
                     tickformat=".2f", title_font_color=OVERLAP)
    span = views.TOY_SPAN
    fig.update_xaxes(row=4, col=1, range=[-span, span], constrain="domain", title_text="ξ₁",
                     title_standoff=4)
    fig.update_yaxes(row=4, col=1, range=[-span, span], scaleanchor="x4", constrain="domain",
                     constraintoward="top", title_text="ξ₂", title_standoff=4)
    fig.update_annotations(font_size=12)  # the subplot titles
    fig.update_layout(**layout_updates(state))
    return fig


class EnergyWidget(View):
    """Controls (classical or modern, softmax or sparsemax, beta, the pattern set, the number of stored
    patterns, the corruption and its amount) over the four panels. beta and the weighting apply to the
    modern network only and are disabled in classical mode."""

    gallery_control = BETA_LABEL

    def __init__(self, kind: str = MODERN, weighting: str = SOFTMAX, beta: float = 0.3,
                 pattern_set: str = GLYPH_SET, n_patterns: int = 8, corruption: str = NOISE,
                 amount: float = 0.15):
        where = "EnergyWidget"
        s = settings_for(where, kind=kind, weighting=weighting, beta=beta, pattern_set=pattern_set,
                         n_patterns=n_patterns, corruption=corruption, amount=amount)
        low, high, _ = BETAS
        if not 10 ** low <= s.beta <= 10 ** high:
            raise ValueError(f"{where}: `beta` must be in [{10 ** low:g}, {10 ** high:.3g}] (the slider's "
                             f"range); got {beta!r}.")
        if not AMOUNTS[0] <= s.amount <= AMOUNTS[1]:
            raise ValueError(f"{where}: `amount` must be in [{AMOUNTS[0]}, {AMOUNTS[1]}] (the slider's "
                             f"range); got {amount!r}.")
        style = dict(continuous_update=False, style={"description_width": "initial"})
        self.kind = widgets.ToggleButtons(options=views.KINDS, value=s.kind, description="network",
                                          style={"button_width": "90px"},
                                          layout=widgets.Layout(flex="0 0 auto"))
        self.weighting = widgets.Dropdown(options=views.WEIGHTINGS, value=s.weighting,
                                          description="weights (modern)", layout=control_layout(250),
                                          style=style["style"])
        self.pattern_set = widgets.Dropdown(options=views.PATTERN_SETS, value=s.pattern_set,
                                            description="pattern set", layout=control_layout(250),
                                            style=style["style"])
        self.beta = widgets.FloatLogSlider(value=s.beta, base=10, min=low, max=high, step=BETAS[2],
                                           description=BETA_LABEL, readout_format=".3g",
                                           layout=control_layout(SLIDER), **style)
        self.n_patterns = widgets.IntSlider(value=s.n_patterns, min=1, max=views.MAX_PATTERNS[s.pattern_set],
                                            description="stored patterns M", layout=control_layout(SLIDER),
                                            **style)
        self.corruption = widgets.Dropdown(options=views.CORRUPTIONS, value=s.corruption,
                                           description="corruption", layout=control_layout(250),
                                           style=style["style"])
        self.amount = widgets.FloatSlider(value=s.amount, min=AMOUNTS[0], max=AMOUNTS[1], step=AMOUNTS[2],
                                          description="fraction corrupted", readout_format=".2f",
                                          layout=control_layout(SLIDER), **style)
        self.summary = widgets.HTML()
        self._quiet = False
        state = self.state()
        self.figure = go.FigureWidget(energy_figure(state))
        self.figure._config = {**self.figure._config, "responsive": True}  # follow the notebook's width
        for control in (self.kind, self.weighting, self.pattern_set, self.beta, self.n_patterns,
                        self.corruption, self.amount):
            control.observe(self.update, names="value")
        self.widget = widgets.VBox([
            wrapping_row([self.kind, self.weighting]), wrapping_row([self.beta, self.pattern_set]),
            wrapping_row([self.n_patterns, self.corruption]), wrapping_row([self.amount]), self.summary,
            self.figure, FitPlotsToWidth()], layout=widgets.Layout(width="100%", overflow="auto"))
        self._show(state)

    def settings(self) -> Settings:
        return Settings(self.kind.value, self.weighting.value, self.beta.value, self.pattern_set.value,
                        self.n_patterns.value, self.corruption.value, self.amount.value)

    def state(self) -> State:
        return retrieval_for(self.settings())

    def _show(self, state: State):
        on = applies(state.settings)
        self.beta.disabled = not on["beta"]
        self.weighting.disabled = not on["weighting"]
        update_traces(self.figure, figure_traces(state))
        update_panels(self.figure, layout_updates(state), panel_titles(state))
        self.summary.value = f"<b>{summary(state)}</b>"

    def update(self, change=None):
        if self._quiet:
            return
        if change is not None and change["owner"] is self.pattern_set:
            self._quiet = True  # the slider's maximum clamps its value: one update for both
            try:
                self.n_patterns.max = views.MAX_PATTERNS[self.pattern_set.value]
            finally:
                self._quiet = False
        self._show(self.state())

    def snapshot(self):
        """The four panels as a static matplotlib figure."""
        import matplotlib.pyplot as plt
        from matplotlib.colors import LinearSegmentedColormap

        state = self.state()
        r, t = state.retrieval, state.toy
        titles = panel_titles(state)
        cmap = LinearSegmentedColormap.from_list("pixels", [(p, c) for p, c in PIXELS]).with_extremes(
            bad="white")
        fig = plt.figure(figsize=(11, 12))  # laid out by hand: constrained layout costs a second
        grid = fig.add_gridspec(4, 1, height_ratios=[0.14, 0.23, 0.14, 0.49], hspace=0.32, left=0.07,
                                right=0.95, top=0.96, bottom=0.1)

        def tiles(ax, images, per_row, title):
            z = torch.tensor([[math.nan if v is None else v for v in row] for row in mosaic(images, per_row)])
            image = ax.imshow(z.numpy(), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
            for x, y in tile_corners(len(images), per_row):
                ax.add_patch(plt.Rectangle((x, y), SIDE, SIDE, fill=False, edgecolor=FRAME, linewidth=0.8))
            ax.set_title(textwrap.fill(title, 110), fontsize=9)
            ax.grid(False)
            ax.set_yticks([])
            ax.spines[:].set_visible(False)
            return image

        ax = fig.add_subplot(grid[0])
        image = tiles(ax, r.states, STEPS + 1, titles[0])
        ax.set_xticks(tile_centres(STEPS + 1), ["query", *[str(k) for k in range(1, STEPS + 1)]])
        fig.colorbar(image, ax=ax, label="pixel", ticks=[-1, 0, 1], fraction=0.03)
        ax = fig.add_subplot(grid[1])
        ax.plot(range(STEPS + 1), r.energies.numpy(), "o-", color=ENERGY, label="energy")
        ax.set(xlabel="update (0: the query)", ylabel=views.energy_name(r))
        ax.set_title(titles[1], fontsize=9)
        twin = ax.twinx()
        twin.plot(range(STEPS + 1), r.overlaps.numpy(), "o:", color=OVERLAP, label="overlap m")
        twin.set(ylabel="overlap m", ylim=(min(-0.05, float(r.overlaps.min()) - 0.05), 1.05))
        ax.legend(handles=ax.get_lines() + twin.get_lines(), fontsize=8, loc="center right")
        ax = fig.add_subplot(grid[2])
        tiles(ax, r.patterns, PER_ROW, titles[2])
        ax.set_xticks([])
        ax.add_patch(plt.Rectangle((-0.5, -0.5), SIDE, SIDE, fill=False, edgecolor=TARGET, linewidth=2.5))
        ax = fig.add_subplot(grid[3])
        a, b = torch.meshgrid(t.alphas, t.betas, indexing="ij")
        filled = ax.contourf(a.numpy(), b.numpy(), t.surface.log10().numpy(), levels=24, cmap="viridis")
        fig.colorbar(filled, ax=ax, label="log10 E", fraction=0.04)
        ax.plot(t.path[:, 0].numpy(), t.path[:, 1].numpy(), "o-", color=PATH_COLORS[0], ms=4,
                label="query's path")
        ax.plot(t.path[:1, 0].numpy(), t.path[:1, 1].numpy(), "s", color=PATH_COLORS[0], ms=8)
        ax.plot(TOY_PATTERNS[:, 0].numpy(), TOY_PATTERNS[:, 1].numpy(), "x", color="white", ms=9, mew=2,
                label="stored points")
        ax.set(xlabel="ξ₁", ylabel="ξ₂", aspect="equal", anchor="C")
        ax.set_title(titles[3], fontsize=9)
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(False)
        fig.supxlabel(textwrap.fill(summary(state), 150), fontsize=8)
        return fig


def gallery() -> EnergyWidget:
    """The widget on its generated patterns, for the browser gallery: the modern network (softmax,
    beta 0.3) on 8 glyph images, the query with 15% of its pixels flipped; the gallery moves beta."""
    return EnergyWidget()
