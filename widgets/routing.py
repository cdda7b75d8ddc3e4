"""The routing widget: where each token goes, how loaded each expert is, and who is dropped.

Three panels: the tokens in their 2-D input space over the router's decision regions (dropped tokens
marked x), the gate of every (token, expert) pair as a heatmap (dropped assignments marked), and each
expert's load as bars with the capacity line. Three routers, each with its own regions:
  top-k  noisy top-k gating (Shazeer et al. 2017), then dispatch with a Switch-style capacity; a
         point's region is its router's first choice;
  SMEAR  soft merging (Muqeeth et al. 2023): every token averages all experts by its router
         probabilities, so nothing is dispatched or dropped, the load is soft, and the regions are
         the probabilities' blend of the experts' colours; k and the capacity do not apply;
  OT     a k-sparse, balanced optimal-transport plan (Liu et al. 2023) in place of top-k; a point's
         region is the top of score + the plan's potentials, the shift that balances the load.
Controls re-route the same tokens; the balance-loss weight asks a training function given by the
caller (the library's, not the widget's) for new router weights, once per value.
The logic (`route`, `summary`, `panel_updates`, `region_colors`) is plain Python, testable without a
browser.
"""
from dataclasses import dataclass

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from course.data import gaussian_mixture, ring_centers
from course.moe import cv_squared, dispatch, expert_capacity, noisy_top_k_gating, prototype_gate, with_bias
from course.widgets.view import FitPlotsToWidth, View, control_layout, update_traces, wrapping_row

# One colour per expert (D3's palette without its red), and red for what is dropped.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#7f7f7f", "#393b79", "#637939", "#8c6d31")
DROPPED = "#d62728"
ROUTERS = ("top-k", "SMEAR", "OT")
BALANCE_WEIGHTS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)
REGION_TINT = 0.3  # how much of an expert's colour a region shows over white
GRID = 80  # decision regions are drawn on a GRID x GRID grid


def expert_color(e: int) -> str:
    return PALETTE[e % len(PALETTE)]


@dataclass
class Routing:
    """One routing of a token batch, as the widget draws it."""

    x: torch.Tensor             # [T, 2] token inputs
    expert_index: torch.Tensor  # [T, k] chosen experts, best first
    gates: torch.Tensor         # [T, E] dense gates (zero outside the chosen experts)
    kept: torch.Tensor          # [T, k] whether each assignment survived the capacity
    routed: torch.Tensor        # [E] assignments routed to each expert (soft for SMEAR)
    counts: torch.Tensor        # [E] assignments kept by each expert (soft for SMEAR)
    capacity: int | None
    router: str = "top-k"
    potentials: torch.Tensor | None = None  # [E] OT's shift of the scores

    @property
    def dropped(self) -> int:
        return int((~self.kept).sum())

    @property
    def lost_tokens(self) -> torch.Tensor:
        """[T] tokens that no expert processed."""
        return ~self.kept.any(1)

    @property
    def load_cv(self) -> float:
        """Coefficient of variation of the routed load across experts (Shazeer et al. 2017, eq. 7).

        Taken before the capacity drops anything: it measures the router, which the balance loss trains.
        """
        return cv_squared(self.routed.float()).sqrt().item()


def route(x, w_gate, w_noise=None, k: int = 1, capacity_factor: float | None = 1.0,
          noise_scale: float = 0.0, seed: int = 0, router: str = "top-k") -> Routing:
    """Route 2-D tokens (a bias feature appended) with one of ROUTERS and a capacity.

    x [T, 2], w_gate [3, E], w_noise [3, E] or None; capacity_factor None means no capacity.
    """
    if router not in ROUTERS:
        raise ValueError(f"route: `router` must be one of {ROUTERS}; got {router!r}.")
    T, E = x.shape[0], w_gate.shape[1]
    gating = noisy_top_k_gating(with_bias(x), w_gate, w_noise, E if router == "SMEAR" else k,
                                train=noise_scale > 0, noise_scale=noise_scale,
                                generator=torch.Generator().manual_seed(seed))
    if router == "SMEAR":  # all E experts, weighted by the full softmax: nothing to drop
        soft_load = gating.gates.new_zeros(E).index_add(0, gating.expert_index.flatten(),
                                                         gating.gates.flatten())
        dense = torch.zeros(T, E).scatter(1, gating.expert_index, gating.gates)
        return Routing(x, gating.expert_index, dense, torch.ones(T, E, dtype=torch.bool), soft_load,
                       soft_load, None, router)
    expert_index, gates, potentials = gating.expert_index, gating.gates, None
    if router == "OT":
        from course.moe.transport import sparse_ot_route

        expert_index, gates, potentials = sparse_ot_route(gating.logits, k)
    capacity = None if capacity_factor is None else expert_capacity(T, E, k, capacity_factor)
    out = dispatch(x, expert_index, E, capacity)
    dense = torch.zeros(T, E).scatter(1, expert_index, gates)
    routed = torch.bincount(expert_index.flatten(), minlength=E)
    return Routing(x, expert_index, dense, out.slot >= 0, routed, out.counts, capacity, router,
                   potentials)


def summary(r: Routing) -> str:
    """One line: what the router did with the capacity, and how even the load is."""
    T, k = r.kept.shape
    cv = f"router load CV {r.load_cv:.2f}"
    if r.router == "SMEAR":
        return f"SMEAR: every token merges all {k} experts, nothing is dropped; soft {cv}"
    cap = "no capacity" if r.capacity is None else f"capacity {r.capacity} per expert"
    pct = 100 * r.dropped / max(1, T * k)
    return (f"{r.router}: {cap}; {r.dropped} of {T * k} assignments dropped ({pct:.1f}%); "
            f"{int(r.lost_tokens.sum())} of {T} tokens reach no expert; {cv}")


def grid_points(extent: float, n: int = GRID):
    """The n x n grid over [-extent, extent]^2 (x fastest): axis [n], points [n n, 2]."""
    axis = torch.linspace(-extent, extent, n)
    return axis, torch.stack(torch.meshgrid(axis, axis, indexing="xy"), dim=-1).reshape(-1, 2)


def region_weights(router: str, w_gate, extent: float, potentials=None, n: int = GRID):
    """How much each expert owns each grid point: [n, n, E], rows summing to 1.

    top-k: the first choice of the noise-free router (one-hot); OT: the first of score + potentials;
    SMEAR: the router's probabilities.
    """
    _, points = grid_points(extent, n)
    logits = with_bias(points) @ w_gate  # [n n, E]
    if router == "SMEAR":
        weights = logits.softmax(-1)
    else:
        shifted = logits if potentials is None else logits + potentials
        weights = torch.nn.functional.one_hot(shifted.argmax(-1), w_gate.shape[1]).float()
    return weights.reshape(n, n, -1)


def rgb(color: str) -> torch.Tensor:
    return torch.tensor([int(color[i:i + 2], 16) for i in (1, 3, 5)], dtype=torch.float32)


def region_colors(weights) -> torch.Tensor:
    """Each grid point's blend of its experts' colours, tinted over white. [n, n, E] -> [n, n, 3]"""
    colors = torch.stack([rgb(expert_color(e)) for e in range(weights.shape[-1])])  # [E, 3]
    return 255 * (1 - REGION_TINT) + REGION_TINT * weights @ colors


def panel_updates(r: Routing, w_gate, extent: float):
    """What the figure shows for a routing: {trace index: properties}, and the capacity line."""
    order = torch.argsort(r.expert_index[:, 0], stable=True)  # tokens grouped by first choice
    position = torch.empty_like(order)
    position[order] = torch.arange(len(order))
    lost = r.lost_tokens.tolist()
    dropped_t, dropped_j = (~r.kept).nonzero(as_tuple=True)
    E = r.gates.shape[1]
    regions = region_colors(region_weights(r.router, w_gate, extent, r.potentials))
    traces = {
        0: dict(z=regions.round().to(torch.uint8).tolist()),
        1: dict(x=r.x[:, 0].tolist(), y=r.x[:, 1].tolist(), marker=dict(
            color=[DROPPED if gone else expert_color(e)
                   for e, gone in zip(r.expert_index[:, 0].tolist(), lost)],
            symbol=["x" if gone else "circle" for gone in lost], size=[9 if gone else 6 for gone in lost],
            line=dict(width=0.5, color="white"))),
        2: dict(z=r.gates[order].t().tolist()),
        3: dict(x=position[dropped_t].tolist(), y=r.expert_index[dropped_t, dropped_j].tolist()),
        4: dict(x=list(range(E)), y=r.counts.tolist()),
        5: dict(x=list(range(E)), y=(r.routed - r.counts).tolist()),
    }
    shapes = [] if r.capacity is None else [dict(
        type="line", xref="x3", yref="y3", x0=-0.5, x1=E - 0.5, y0=r.capacity, y1=r.capacity,
        line=dict(color="black", dash="dash"))]
    return traces, shapes


def load_axis_top(r: Routing) -> float:
    """The top of the load axis: room for the tallest bar and for the capacity line."""
    return 1.15 * max(float(r.routed.max()), float(r.capacity or 0), 1.0)


class RoutingWidget(View):
    """Controls (router, k, capacity factor, gate noise, balance-loss weight) over the three panels.

    `train_router(w_balance) -> (w_gate, w_noise)`, when given, retrains the router for a balance-loss
    weight; each weight is trained once and remembered. `capacity_factor=None` starts with no capacity
    (the "limit on" box beside the capacity factor unticked), as `route` reads None; a factor or noise
    beyond the sliders' usual range widens the range rather than being clipped.
    """

    gallery_control = "capacity factor"

    def __init__(self, x, w_gate, w_noise=None, k: int = 1, capacity_factor: float = 1.0,
                 noise_scale: float = 0.0, seed: int = 0, train_router=None):
        self.x, self.seed, self.train_router = x, seed, train_router
        self.trained = {}
        self.w_gate, self.w_noise = w_gate, w_noise
        self.extent = float(x.abs().max()) * 1.1
        E = w_gate.shape[1]
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= E:
            raise ValueError(f"RoutingWidget: `k` must be an int in [1, E] = [1, {E}] (E from "
                             f"w_gate.shape[1]); got {k!r}.")
        for name, value in (("capacity_factor", capacity_factor), ("noise_scale", noise_scale)):
            if value is not None and not (isinstance(value, (int, float)) and 0 <= value < float("inf")):
                raise ValueError(f"RoutingWidget: `{name}` must be a finite number >= 0"
                                 f"{' or None' if name == 'capacity_factor' else ''}; got {value!r}.")
        if capacity_factor is not None and capacity_factor <= 0:
            raise ValueError(f"RoutingWidget: `capacity_factor` must be > 0 or None (no capacity); "
                             f"got {capacity_factor!r}.")
        style = dict(continuous_update=False, style={"description_width": "initial"})
        self.router = widgets.ToggleButtons(options=ROUTERS, value="top-k", description="router",
                                            style={"button_width": "74px"},
                                            layout=widgets.Layout(flex="0 0 auto"))
        self.k = widgets.IntSlider(value=k, min=1, max=E, description="experts per token k",
                                   layout=control_layout(), **style)
        factor = 1.0 if capacity_factor is None else float(capacity_factor)
        self.limit = widgets.Checkbox(value=capacity_factor is not None, description="limit on",
                                      indent=False, layout=widgets.Layout(width="auto", margin="0 0 0 8px"))
        self.capacity_factor = widgets.FloatSlider(value=factor, min=min(0.25, factor),
                                                   max=max(3.0, factor), step=0.25,
                                                   description="capacity factor",
                                                   layout=control_layout(), **style)
        self.noise = widgets.FloatSlider(value=noise_scale, min=0.0, max=max(3.0, noise_scale), step=0.25,
                                         description="gate noise", disabled=w_noise is None,
                                         layout=control_layout(), **style)
        self.balance = widgets.SelectionSlider(options=BALANCE_WEIGHTS, value=BALANCE_WEIGHTS[0],
                                               description="balance-loss weight",
                                               disabled=train_router is None,
                                               layout=control_layout(), **style)
        self.summary = widgets.HTML()
        self.figure = self._empty_figure(E)
        for control in (self.router, self.k, self.limit, self.capacity_factor, self.noise):
            control.observe(self.update, names="value")
        self.balance.observe(self.retrain, names="value")
        self.widget = widgets.VBox([
            wrapping_row([self.router, self.k, self.capacity_factor, self.limit]),
            wrapping_row([self.noise, self.balance]), self.summary, self.figure, FitPlotsToWidth()],
            layout=widgets.Layout(width="100%", overflow="auto"))
        if train_router is not None:
            self.retrain()
        self.update()

    def retrain(self, change=None):
        """New router weights for the chosen balance-loss weight (trained once per weight)."""
        w = self.balance.value
        if w not in self.trained:
            self.trained[w] = self.train_router(w)
        self.w_gate, self.w_noise = self.trained[w]
        if change is not None:
            self.update()

    def routing(self) -> Routing:
        factor = self.capacity_factor.value if self.limit.value else None
        return route(self.x, self.w_gate, self.w_noise, self.k.value, factor, self.noise.value,
                     self.seed, self.router.value)

    def _empty_figure(self, E: int) -> go.FigureWidget:
        fig = make_subplots(rows=1, cols=3, column_widths=[0.32, 0.4, 0.28], horizontal_spacing=0.08,
                            subplot_titles=("tokens and decision regions", "gates (token x expert)",
                                            "expert load"))
        axis, _ = grid_points(self.extent)
        step = float(axis[1] - axis[0])
        fig.add_trace(go.Image(x0=float(axis[0]), dx=step, y0=float(axis[0]), dy=step,
                               hoverinfo="skip", name="regions"), 1, 1)
        fig.add_trace(go.Scatter(mode="markers", name="tokens", showlegend=False), 1, 1)
        gates = fig.layout.xaxis2.domain
        fig.add_trace(go.Heatmap(colorscale="Blues", zmin=0, zmax=1, name="gates", colorbar=dict(
            title=dict(text="gate", side="right"), orientation="h", thickness=10, len=gates[1] - gates[0],
            x=(gates[0] + gates[1]) / 2, y=-0.32)), 1, 2)
        fig.add_trace(go.Scatter(mode="markers", name="dropped", marker=dict(symbol="x", color=DROPPED,
                                                                            size=6)), 1, 2)
        fig.add_trace(go.Bar(name="kept", marker_color=[expert_color(e) for e in range(E)],
                             showlegend=False), 1, 3)
        fig.add_trace(go.Bar(name="dropped", marker_color=DROPPED, showlegend=False), 1, 3)
        fig.update_layout(barmode="stack", height=430, autosize=True,
                          margin=dict(l=40, r=10, t=40, b=70),
                          legend=dict(orientation="h", x=gates[1] + 0.1, y=-0.22))
        fig.update_xaxes(range=[-self.extent, self.extent], row=1, col=1)
        fig.update_yaxes(range=[-self.extent, self.extent], autorange=False, scaleanchor="x",
                         row=1, col=1)
        fig.update_xaxes(title_text="tokens, grouped by first expert", row=1, col=2)
        fig.update_yaxes(title_text="expert", tickmode="linear", tick0=0, dtick=1, row=1, col=2)
        fig.update_xaxes(title_text="expert", tickmode="linear", tick0=0, dtick=1, row=1, col=3)
        widget = go.FigureWidget(fig)
        widget._config = {**widget._config, "responsive": True}  # follow the notebook's width
        return widget

    def update(self, change=None):
        smear = self.router.value == "SMEAR"
        self.k.disabled = self.limit.disabled = smear  # SMEAR merges all, drops none
        self.capacity_factor.disabled = smear or not self.limit.value
        r = self.routing()
        traces, shapes = panel_updates(r, self.w_gate, self.extent)
        update_traces(self.figure, traces)
        with self.figure.batch_update():
            self.figure.layout.shapes = shapes
            self.figure.layout.yaxis3.range = [0, load_axis_top(r)]
        self.summary.value = f"<b>{summary(r)}</b>"

    def snapshot(self):
        """The three panels as a static matplotlib figure."""
        import matplotlib.pyplot as plt

        r = self.routing()
        traces, shapes = panel_updates(r, self.w_gate, self.extent)
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), width_ratios=[0.3, 0.44, 0.26],
                                 layout="constrained")
        e = self.extent
        axes[0].imshow(torch.tensor(traces[0]["z"]).numpy(), origin="lower", extent=(-e, e, -e, e))
        marker = traces[1]["marker"]
        for symbol in ("circle", "x"):
            pick = [i for i, s in enumerate(marker["symbol"]) if s == symbol]
            axes[0].scatter([traces[1]["x"][i] for i in pick], [traces[1]["y"][i] for i in pick],
                            c=[marker["color"][i] for i in pick], s=12 if symbol == "circle" else 24,
                            marker="o" if symbol == "circle" else "x", linewidths=0.6)
        axes[0].set_title("tokens and decision regions")
        image = axes[1].imshow(torch.tensor(traces[2]["z"]).numpy(), aspect="auto", cmap="Blues",
                               vmin=0, vmax=1, interpolation="nearest", origin="lower")
        axes[1].scatter(traces[3]["x"], traces[3]["y"], marker="x", c=DROPPED, s=10)
        fig.colorbar(image, ax=axes[1], label="gate", fraction=0.05)
        axes[1].set(title="gates (token x expert)", xlabel="tokens, grouped by first expert",
                    ylabel="expert", yticks=range(len(traces[4]["x"])))
        axes[2].bar(traces[4]["x"], traces[4]["y"], color=[expert_color(i) for i in traces[4]["x"]])
        axes[2].bar(traces[5]["x"], traces[5]["y"], bottom=traces[4]["y"], color=DROPPED)
        for line in shapes:
            axes[2].axhline(line["y0"], color="black", linestyle="--", linewidth=1)
        axes[2].set(title="expert load", xlabel="expert", xticks=traces[4]["x"],
                    ylim=(0, load_axis_top(r)))
        fig.supxlabel(summary(r), fontsize=9)
        return fig


def gallery() -> RoutingWidget:
    """The widget on ready data, for the browser gallery: four blobs of unequal size, a prototype
    router (no training), top-1 with a capacity factor of 1."""
    centers = ring_centers(4)
    tokens, _ = gaussian_mixture(256, centers, weights=[5, 2, 1, 1], seed=0)
    return RoutingWidget(tokens, 0.5 * prototype_gate(centers), torch.zeros(3, 4), k=1,
                         capacity_factor=1.0, noise_scale=1.0)
