"""The landscape widget: the loss around a trained network with its optimiser's path, and the line
between two networks before and after Git Re-Basin's alignment.

Li, Xu, Taylor, Studer and Goldstein 2018 ("Visualizing the Loss Landscape of Neural Nets",
arXiv:1712.09913): the loss on the plane theta + alpha d1 + beta d2 around the parameters theta of a
run's end (eq. 1 there; `course.landscape.grid.surface`), for directions that are
- random: Gaussian, each rescaled as a whole to theta's norm, so that the plane's units match the
  filter-normalised ones overall and only how the scale is spread over the filters differs;
- filter-normalised (section 4): every unit's incoming weights rescaled to theta's norm there, biases 0;
- the PCA of the run's trajectory (section 7): the first two principal directions of theta_i - theta_n,
  on which the path lies as well as a plane allows (random planes are nearly orthogonal to it).
The run's trajectory is drawn on the plane at its least-squares coordinates (`directions.project`;
the run's end is the centre, (0, 0)), on the 3-D surface at the loss there. Ainsworth, Hayase and
Srinivasa 2023 ("Git Re-Basin", arXiv:2209.04836, section 3.2): the loss on the straight line from
network A to network B as trained, and to B with its hidden units permuted by weight matching
(`course.landscape.permutation`), with the barrier of each (`interpolation.barrier`).

Controls: the model pair (a hidden width), the directions, the grid's resolution, the plane's span
(random and filter-normalised directions; PCA's plane spans the path), alignment on or off, and the
learning rate of the run whose path is drawn: SGD from network A's initialisation with A's
mini-batches, trained beforehand by `course.landscape.views.widget_data` (the widget never trains);
at the pair's base learning rate it is A's own training. Non-finite losses on the grid are drawn as
gaps and counted in the summary.

The pieces are plain functions the next family reuses: `plane_directions`, `plane_axes`,
`path_on_plane` (the path projection), `plane_losses`, `alignment_line`, `landscape` (all of it for
the controls' `Settings`), `summary`, `landscape_traces` and `landscape_figure(surface, alphas, betas,
paths)`, a plotly figure of any surface with any paths on it.
"""
import functools
import math
import textwrap
from dataclasses import dataclass, replace

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from course.checks import check_int, check_tensor
from course.landscape import directions as library
from course.landscape import permutation
from course.landscape.grid import surface as grid_surface
from course.landscape.ops import grid_loss
from course.landscape.views import BASE_LR, WidgetData, widget_data
from course.train import one_thread
from course.widgets.view import FitPlotsToWidth, View, control_layout, update_traces, wrapping_row

WHERE = "widgets.landscape"
RANDOM, FILTER, PCA = "random", "filter-normalised", "PCA of the path"
DIRECTIONS = (RANDOM, FILTER, PCA)
RESOLUTIONS = (11, 21, 31, 41)  # grid points per axis, odd: (0, 0) is a grid point
PCA_MARGIN = 1.25  # PCA's plane spans the path's coordinates times this on each axis
LINE_POINTS = 25   # points on the line from A to B
TINY_LOSS = 1e-12  # log10 of a loss is taken from here up
COLORSCALE = "Viridis"
# The paths' colours, and the two lines', in hues the colour scale does not use.
PATH_COLORS = ("#d62728", "#ff7f0e", "#e377c2", "#8c564b")
BEFORE, AFTER = "#7f7f7f", "#1f77b4"


@dataclass(frozen=True)
class Settings:
    """What the controls say."""

    pair: int = 32            # the model pair, by hidden width
    directions: str = FILTER
    resolution: int = 31
    span: float = 1.0         # the plane's half-width for random and filter-normalised directions
    aligned: bool = True
    lr: float = BASE_LR       # the run whose path is drawn and whose end is the centre
    seed: int = 0             # the random directions' seed


def settings_for(data: WidgetData, where: str = WHERE, **controls) -> Settings:
    """The controls as checked `Settings` for `data`; each bad one raises an error that names it."""
    s = Settings(**{"lr": data.base_lr, **controls})
    if s.pair not in data.pairs:
        raise ValueError(f"{where}: `pair` must be one of the hidden widths {tuple(data.pairs)}; "
                         f"got {s.pair!r}.")
    if s.directions not in DIRECTIONS:
        raise ValueError(f"{where}: `directions` must be one of {DIRECTIONS}; got {s.directions!r}.")
    check_int(where, "resolution", s.resolution, low=3)
    if s.resolution % 2 == 0:
        raise ValueError(f"{where}: `resolution` must be odd (so that (0, 0) is a grid point); "
                         f"got {s.resolution}.")
    if isinstance(s.span, bool) or not isinstance(s.span, (int, float)) or not 0 < s.span < math.inf:
        raise ValueError(f"{where}: `span` must be a finite number > 0; got {s.span!r}.")
    if not isinstance(s.aligned, bool):
        raise ValueError(f"{where}: `aligned` must be True or False; got {s.aligned!r}.")
    if s.lr not in data.learning_rates:
        raise ValueError(f"{where}: `lr` must be one of the trained learning rates {data.learning_rates}; "
                         f"got {s.lr!r} (the widget never trains).")
    check_int(where, "seed", s.seed, low=0)
    return replace(s, span=float(s.span))


def plane_directions(kind: str, theta: torch.Tensor, widths, trajectory=None, seed: int = 0) -> tuple:
    """(d1, d2, explained): two directions [P] around theta [P] of the MLP of `widths`, and for PCA the
    fractions of the trajectory's [T, P] variance they explain (None otherwise)."""
    where = f"{WHERE}.plane_directions"
    check_tensor(where, "theta", theta, ndim=1, kind="float")
    if kind == RANDOM:
        d1, d2 = (library.random_direction(theta, s) for s in (seed, seed + 1))
        return d1 * (theta.norm() / d1.norm()), d2 * (theta.norm() / d2.norm()), None
    if kind == FILTER:
        return (*library.filter_normalized_directions(theta, widths, seed), None)
    if kind == PCA:
        if trajectory is None:
            raise ValueError(f"{where}: PCA directions need the run's `trajectory` [T, P]; got None.")
        return library.pca_directions(trajectory)
    raise ValueError(f"{where}: `kind` must be one of {DIRECTIONS}; got {kind!r}.")


def symmetric_axis(n: int, extent: float) -> torch.Tensor:
    """n (odd) points from -extent to extent, 0 exactly in the middle. -> [n]"""
    check_int(f"{WHERE}.symmetric_axis", "n", n, low=1)
    if n % 2 == 0:
        raise ValueError(f"{WHERE}.symmetric_axis: `n` must be odd (0 in the middle); got {n}.")
    half = torch.linspace(0, extent, (n + 1) // 2)
    return torch.cat([-half.flip(0)[:-1], half])


def plane_axes(kind: str, span: float, resolution: int, coords=None) -> tuple:
    """(alphas [n], betas [n]): [-span, span] on both axes, or for PCA the path's coordinates [T, 2]
    on each axis with a margin of PCA_MARGIN (span where the path does not move along an axis)."""
    if kind != PCA:
        return symmetric_axis(resolution, span), symmetric_axis(resolution, span)
    check_tensor(f"{WHERE}.plane_axes", "coords", coords, ndim=2, kind="float")
    reach = coords.abs().nan_to_num(0.0, 0.0, 0.0).amax(0).tolist() if len(coords) else [0.0, 0.0]
    return tuple(symmetric_axis(resolution, PCA_MARGIN * r if r > 0 else span) for r in reach)


def path_on_plane(trajectory: torch.Tensor, theta: torch.Tensor, d1: torch.Tensor,
                  d2: torch.Tensor) -> torch.Tensor:
    """The path projection: each point of trajectory [T, P] at its least-squares plane coordinates
    (alpha, beta) around theta (Li et al. 2018, section 7). -> [T, 2]"""
    return library.project(trajectory, theta, d1, d2)


def plane_losses(x, labels, theta, d1, d2, coords, widths) -> torch.Tensor:
    """The loss at plane points theta + alpha d1 + beta d2 for coords [T, 2] (a path's shadow on the
    plane, which lies on the surface), through the grid op. -> [T]"""
    return grid_loss(x, labels, theta, d1, d2, coords.to(x.dtype), widths)


def alignment_line(x, labels, theta_a, theta_b, widths, points: int = LINE_POINTS) -> dict:
    """Weight matching of b onto a (Git Re-Basin, Algorithm 1), and the losses [K] on the line from a
    to b as trained and to b permuted, with their barriers:
    {"ts", "losses_before", "losses_after", "before", "after", "perms"}."""
    perms = permutation.weight_matching(theta_a, theta_b, widths)
    return {**permutation.barriers_before_after(x, labels, theta_a, theta_b, widths, perms, points),
            "perms": perms}


@functools.lru_cache(maxsize=8)
def _alignment(data: WidgetData, hidden: int) -> dict:
    pair = data.pairs[hidden]
    with one_thread():
        return alignment_line(data.task.x_train, data.task.y_train, pair.theta_a, pair.theta_b, pair.widths)


@dataclass
class Landscape:
    """What the panels draw for one setting."""

    settings: Settings
    pair_name: str
    base_lr: float
    steps: int
    surface: torch.Tensor      # [A, B] the loss at (alphas[i], betas[j])
    alphas: torch.Tensor       # [A]
    betas: torch.Tensor        # [B]
    path: torch.Tensor         # [T, 2] the run's trajectory on the plane; the last row (0, 0)
    path_losses: torch.Tensor  # [T] the loss at those plane points
    explained: tuple | None    # PCA: the fractions of the path's variance on d1 and d2
    line: dict                 # `alignment_line` of the pair

    @property
    def centre_loss(self) -> float:
        return float(self.surface[len(self.alphas) // 2, len(self.betas) // 2])

    @property
    def nonfinite(self) -> int:
        return int((~torch.isfinite(self.surface)).sum())


@functools.lru_cache(maxsize=64)
def _plane(data: WidgetData, key: Settings) -> tuple:
    pair = data.pairs[key.pair]
    trajectory = pair.runs[key.lr]
    theta = trajectory[-1]
    d1, d2, explained = plane_directions(key.directions, theta, pair.widths, trajectory, key.seed)
    path = path_on_plane(trajectory, theta, d1, d2)
    alphas, betas = plane_axes(key.directions, key.span, key.resolution, path)
    x, y = data.task.x_train, data.task.y_train
    surface = grid_surface(x, y, theta, d1, d2, alphas, betas, pair.widths)
    return surface, alphas, betas, path, plane_losses(x, y, theta, d1, d2, path, pair.widths), explained


@one_thread()
def landscape(data: WidgetData, s: Settings) -> Landscape:
    """Everything the panels draw for the settings (the plane computed once per setting that changes
    it, the alignment once per pair)."""
    s = settings_for(data, **vars(s))
    key = replace(s, aligned=True, span=s.span if s.directions != PCA else 1.0,
                  seed=s.seed if s.directions != PCA else 0)
    surface, alphas, betas, path, losses, explained = _plane(data, key)
    pair = data.pairs[s.pair]
    return Landscape(s, pair.name, data.base_lr, data.steps, surface, alphas, betas, path, losses, explained,
                     _alignment(data, s.pair))


def summary(state: Landscape) -> str:
    """One line: the run, the loss at the centre and its range on the grid, gaps, and the barriers."""
    s, surface = state.settings, state.surface
    finite = surface[torch.isfinite(surface)]
    n = f"{len(state.alphas)} x {len(state.betas)}"
    run = (f"SGD at learning rate {s.lr:g} for {state.steps} steps (network A)" if s.lr == state.base_lr else
           f"a re-run of A's training at learning rate {s.lr:g} for {state.steps} steps")
    if s.directions == PCA:
        plane = (f"PCA of the path, explaining {100 * state.explained[0]:.0f}% and "
                 f"{100 * state.explained[1]:.0f}% of its variance")
    else:
        plane = f"{s.directions} directions, span ±{s.span:g}"
    if len(finite):
        grid = f"{float(finite.min()):.3g} to {float(finite.max()):.3g} on the {n} grid ({plane})"
    else:
        grid = f"no finite loss on the {n} grid ({plane})"
    gaps = (f"; {state.nonfinite} of {surface.numel()} grid losses non-finite, drawn as gaps"
            if state.nonfinite else "")
    before, after = state.line["before"], state.line["after"]
    if s.aligned:
        factor = f", {before / after:.3g}x lower" if after > 0 and before > 0 else ""
        barrier = f"{before:.3g} as trained, {after:.3g} after weight matching{factor}"
    else:
        barrier = f"{before:.3g} as trained (alignment off)"
    return (f"{state.pair_name}, {run}: loss {state.centre_loss:.3g} at the centre, {grid}{gaps}; "
            f"barrier on the line from A to B (lr {state.base_lr:g}): {barrier}")


def finite_or_none(t: torch.Tensor) -> list:
    """A tensor as (nested) lists with None where it is not finite: plotly's gaps."""
    return [finite_or_none(row) for row in t] if t.dim() > 1 else [
        v if math.isfinite(v) else None for v in t.tolist()]


def color_range(logs: torch.Tensor) -> tuple:
    """(cmin, cmax) of the finite log10 losses ((0, 1) where none is finite)."""
    finite = logs[torch.isfinite(logs)]
    if not len(finite):
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    return low, high if high > low else low + 1.0


def log_loss(t: torch.Tensor) -> torch.Tensor:
    """log10 of losses, from TINY_LOSS up (NaN and inf stay non-finite)."""
    return torch.where(torch.isnan(t), t, t.clamp_min(TINY_LOSS)).log10()


def path_symbols(T: int) -> tuple:
    """Marker symbols and sizes along a path of T points: a square at the start, a diamond at the end."""
    symbols = ["square", *["circle"] * max(T - 2, 0), "diamond"][-T:] if T else []
    sizes = [10, *[5] * max(T - 2, 0), 11][-T:] if T else []
    return symbols, sizes


def landscape_traces(surface, alphas, betas, paths: dict) -> list:
    """The properties of every trace of `landscape_figure`, in trace order: the surface (height the
    loss, colour log10 of it), the contours of log10 loss, then for each path {name: (coords [T, 2],
    losses [T])} its line on the surface and on the contours. surface [A, B], alphas [A], betas [B]."""
    where = f"{WHERE}.landscape_traces"
    check_tensor(where, "surface", surface, ndim=2, kind="float")
    if tuple(surface.shape) != (len(alphas), len(betas)):
        raise ValueError(f"{where}: `surface` must be [A, B] = [{len(alphas)}, {len(betas)}] (alphas by "
                         f"betas); got shape {tuple(surface.shape)}.")
    logs = log_loss(surface)
    cmin, cmax = color_range(logs)
    a, b = alphas.tolist(), betas.tolist()
    out = [dict(x=a, y=b, z=finite_or_none(surface.T), surfacecolor=finite_or_none(logs.T), cmin=cmin,
                cmax=cmax),  # plotly's rows are y (beta)
           dict(x=a, y=b, z=finite_or_none(logs.T), zmin=cmin, zmax=cmax)]
    for name, (coords, losses) in paths.items():
        check_tensor(where, f"paths[{name!r}] coords", coords, ndim=2, kind="float")
        xs, ys = finite_or_none(coords[:, 0]), finite_or_none(coords[:, 1])
        out.append(dict(x=xs, y=ys, z=finite_or_none(losses), name=name))
        out.append(dict(x=xs, y=ys, name=name))
    return out


def line_traces(line: dict, aligned: bool = True) -> list:
    """The line panel's traces: the losses from A to B as trained, then to B aligned (hidden when
    alignment is off)."""
    ts = line["ts"].tolist()
    return [dict(x=ts, y=finite_or_none(line["losses_before"])),
            dict(x=ts, y=finite_or_none(line["losses_after"]), visible=aligned)]


def landscape_figure(surface, alphas, betas, paths=None, line=None, aligned: bool = True) -> go.Figure:
    """The 3-D surface and the contour plot of a loss grid surface [A, B] over alphas [A] x betas [B],
    side by side, each path {name: (coords [T, 2], losses [T])} on both, and, given `line`
    (`alignment_line`'s dict), the losses on the line between two networks in a panel below them.
    A plotly figure (traces in `landscape_traces` order, then `line_traces`)."""
    paths = {} if paths is None else paths
    rows = 2 if line is not None else 1
    specs = [[{"type": "scene"}, {"type": "xy"}]] + ([[{"type": "xy", "colspan": 2}, None]] if line else [])
    titles = ("loss surface", "log10 loss and the path", "loss on the line from network A to network B")
    fig = make_subplots(rows=rows, cols=2, specs=specs, horizontal_spacing=0.12, vertical_spacing=0.14,
                        row_heights=[0.64, 0.36] if line is not None else None,
                        subplot_titles=titles[:2 + (line is not None)])
    fig.add_trace(go.Surface(colorscale=COLORSCALE, showscale=False, name="loss", hovertemplate=(
        "alpha %{x:.3g}, beta %{y:.3g}<br>loss %{z:.3g}<extra></extra>")), 1, 1)
    top = fig.layout.yaxis.domain  # the contour's rows
    fig.add_trace(go.Contour(colorscale=COLORSCALE, ncontours=24, connectgaps=False, name="log10 loss",
                             line=dict(width=0.5), colorbar=dict(
                                 title=dict(text="log10 loss", side="right"), thickness=12,
                                 len=top[1] - top[0], y=(top[0] + top[1]) / 2, x=1.01)), 1, 2)
    for k, name in enumerate(paths):
        color = PATH_COLORS[k % len(PATH_COLORS)]
        symbols, sizes = path_symbols(len(paths[name][0]))
        fig.add_trace(go.Scatter3d(mode="lines+markers", name=name, legendgroup=name, showlegend=False,
                                   line=dict(color=color, width=5), marker=dict(color=color, size=3)), 1, 1)
        fig.add_trace(go.Scatter(mode="lines+markers", name=name, legendgroup=name, line=dict(color=color),
                                 marker=dict(color=color, symbol=symbols, size=sizes,
                                             line=dict(width=0.5, color="white"))), 1, 2)
    if line is not None:
        fig.add_trace(go.Scatter(mode="lines+markers", name="B as trained", marker=dict(size=4),
                                 line=dict(color=BEFORE, dash="dash")), 2, 1)
        fig.add_trace(go.Scatter(mode="lines+markers", name="B aligned (weight matching)",
                                 marker=dict(size=4), line=dict(color=AFTER)), 2, 1)
        fig.update_xaxes(title_text="t, the point (1 - t) A + t B", range=[-0.01, 1.01], row=2, col=1)
        fig.update_yaxes(title_text="training loss", row=2, col=1)
    traces = landscape_traces(surface, alphas, betas, paths)
    if line is not None:
        traces += line_traces(line, aligned)
    for trace, props in zip(fig.data, traces):
        trace.update(**props)
    fig.update_annotations(font_size=14)  # the subplot titles
    fig.update_layout(template="plotly_white", height=720 if line is not None else 460, autosize=True,
                      margin=dict(l=10, r=10, t=40, b=40),
                      legend=dict(orientation="h", x=0, y=-0.08 if line is not None else -0.12,
                                  xanchor="left", yanchor="top"),
                      scene=dict(xaxis_title="alpha", yaxis_title="beta", zaxis_title="loss",
                                 aspectmode="cube", camera=dict(eye=dict(x=1.6, y=1.6, z=1.0))))
    fig.update_xaxes(title_text="alpha (direction 1)", row=1, col=2)
    fig.update_yaxes(title_text="beta (direction 2)", row=1, col=2)
    return fig


def state_paths(state: Landscape) -> dict:
    """The widget's one path: the run at its learning rate."""
    return {f"SGD path, lr {state.settings.lr:g}": (state.path, state.path_losses)}


class LandscapeWidget(View):
    """Controls (model pair, directions, resolution, span, alignment, learning rate of the run) over
    the three panels, on `data` from `course.landscape.views.widget_data` (trained beforehand; the widget
    never trains). The span applies to random and filter-normalised directions; PCA's plane spans the
    path, and the span is disabled there."""

    gallery_control = "learning rate of the run"

    def __init__(self, data: WidgetData, pair: int | None = None, directions: str = FILTER,
                 resolution: int = 31, span: float = 1.0, aligned: bool = True, lr: float | None = None):
        where = "LandscapeWidget"
        if not isinstance(data, WidgetData):
            raise TypeError(f"{where}: `data` must be the WidgetData of "
                            f"course.landscape.views.widget_data(); got {type(data).__name__}.")
        if resolution not in RESOLUTIONS:
            raise ValueError(f"{where}: `resolution` must be one of {RESOLUTIONS}; got {resolution!r}.")
        pairs = tuple(data.pairs)
        s = settings_for(data, where, pair=pairs[len(pairs) // 2] if pair is None else pair,
                         directions=directions, resolution=resolution, span=span, aligned=aligned,
                         lr=data.base_lr if lr is None else lr)
        self.data = data
        style = dict(continuous_update=False, style={"description_width": "initial"})
        self.directions = widgets.ToggleButtons(options=DIRECTIONS, value=s.directions,
                                                description="directions", style={"button_width": "124px"},
                                                layout=widgets.Layout(flex="0 0 auto"))
        self.pair = widgets.Dropdown(options=[(p.name, h) for h, p in data.pairs.items()], value=s.pair,
                                     description="model pair", layout=control_layout(260),
                                     style=style["style"])
        self.aligned = widgets.Checkbox(value=s.aligned, description="align B to A (weight matching)",
                                        indent=False, layout=widgets.Layout(width="auto", margin="0 0 0 8px"))
        self.resolution = widgets.SelectionSlider(options=[(f"{n} x {n}", n) for n in RESOLUTIONS],
                                                  value=s.resolution, description="grid",
                                                  layout=control_layout(), **style)
        self.span = widgets.FloatSlider(value=s.span, min=min(0.25, s.span), max=max(2.0, s.span),
                                        step=0.25, description="span ± (alpha, beta)",
                                        layout=control_layout(), **style)
        self.lr = widgets.SelectionSlider(options=[(f"{lr:g}", lr) for lr in data.learning_rates],
                                          value=s.lr, description="learning rate of the run",
                                          layout=control_layout(), **style)
        self.summary = widgets.HTML()
        state = self.state()
        self.figure = go.FigureWidget(landscape_figure(state.surface, state.alphas, state.betas,
                                                       state_paths(state), state.line,
                                                       state.settings.aligned))
        self.figure._config = {**self.figure._config, "responsive": True}  # follow the notebook's width
        for control in (self.directions, self.pair, self.aligned, self.resolution, self.span, self.lr):
            control.observe(self.update, names="value")
        self.widget = widgets.VBox([
            wrapping_row([self.directions, self.pair, self.aligned]),
            wrapping_row([self.lr, self.resolution, self.span]), self.summary, self.figure,
            FitPlotsToWidth()],
            layout=widgets.Layout(width="100%", overflow="auto"))
        self._show(state)

    def settings(self) -> Settings:
        return Settings(self.pair.value, self.directions.value, self.resolution.value, self.span.value,
                        self.aligned.value, self.lr.value)

    def state(self) -> Landscape:
        return landscape(self.data, self.settings())

    def _show(self, state: Landscape):
        self.span.disabled = state.settings.directions == PCA  # PCA's plane spans the path
        traces = landscape_traces(state.surface, state.alphas, state.betas, state_paths(state))
        traces += line_traces(state.line, state.settings.aligned)
        update_traces(self.figure, traces)
        self.summary.value = f"<b>{summary(state)}</b>"

    def update(self, change=None):
        self._show(self.state())

    def snapshot(self):
        """The three panels as a static matplotlib figure (the surface, the contours with the path, the
        line from A to B below them)."""
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        state = self.state()
        a, b = torch.meshgrid(state.alphas, state.betas, indexing="ij")
        loss = state.surface.masked_fill(~torch.isfinite(state.surface), float("nan"))
        logs = log_loss(loss)
        cmin, cmax = color_range(logs)
        fig = plt.figure(figsize=(11, 7.4), layout="constrained")
        grid = fig.add_gridspec(2, 2, height_ratios=[0.62, 0.38])
        ax3d = fig.add_subplot(grid[0, 0], projection="3d")
        colors = plt.get_cmap("viridis")(((logs - cmin) / (cmax - cmin)).clamp(0, 1).nan_to_num(0).numpy())
        ax3d.plot_surface(a.numpy(), b.numpy(), loss.numpy(), facecolors=colors, linewidth=0, shade=False)
        axc = fig.add_subplot(grid[0, 1])
        filled = axc.contourf(a.numpy(), b.numpy(), logs.numpy(), levels=24, cmap="viridis", vmin=cmin,
                              vmax=cmax)
        bar = fig.colorbar(filled, ax=axc, label="log10 loss", fraction=0.06)
        bar.ax.yaxis.set_major_locator(MaxNLocator(6))
        for k, (name, (coords, losses)) in enumerate(state_paths(state).items()):
            color = PATH_COLORS[k % len(PATH_COLORS)]
            ax3d.plot(coords[:, 0].numpy(), coords[:, 1].numpy(), losses.numpy(), color=color, lw=2, zorder=5)
            axc.plot(coords[:, 0].numpy(), coords[:, 1].numpy(), "o-", color=color, ms=3, lw=1.2, label=name)
            axc.plot(coords[:1, 0].numpy(), coords[:1, 1].numpy(), "s", color=color, ms=7)
            axc.plot(coords[-1:, 0].numpy(), coords[-1:, 1].numpy(), "D", color=color, ms=7)
        ax3d.set(title="loss surface", xlabel="alpha", ylabel="beta", zlabel="loss")
        axc.set(title="log10 loss and the path", xlabel="alpha (direction 1)", ylabel="beta (direction 2)")
        axc.legend(fontsize=7, loc="upper right")
        axl = fig.add_subplot(grid[1, :])
        ts = state.line["ts"].numpy()
        axl.plot(ts, state.line["losses_before"].numpy(), "o--", color=BEFORE, ms=3, label="B as trained")
        if state.settings.aligned:
            axl.plot(ts, state.line["losses_after"].numpy(), "o-", color=AFTER, ms=3,
                     label="B aligned (weight matching)")
        axl.set(title="loss on the line from network A to network B", xlabel="t, the point (1 - t) A + t B",
                ylabel="training loss")
        axl.legend(fontsize=7)
        fig.supxlabel(textwrap.fill(summary(state), 150), fontsize=8)
        return fig


def gallery() -> LandscapeWidget:
    """The widget on ready data, for the browser gallery: the width-32 pair, filter-normalised directions,
    a 31 x 31 grid, the run at the base learning rate, alignment on."""
    return LandscapeWidget(widget_data(seed=0))
