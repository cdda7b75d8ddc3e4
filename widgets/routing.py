"""The routing widget: where each token goes, how loaded each expert is, and who is dropped.

Three panels: the tokens in their 2-D input space over the router's decision regions (dropped tokens
marked x), the gate of every (token, expert) pair as a heatmap (dropped assignments marked), and each
expert's load as bars with the capacity line. Controls re-route the same tokens with `course.moe`
(noisy top-k gating, Shazeer et al. 2017, then dispatch with a Switch-style capacity); nothing trains.
The logic (`route`, `summary`) is plain Python, testable without a browser.
"""
from dataclasses import dataclass

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from course.moe import dispatch, expert_capacity, noisy_top_k_gating, with_bias

PALETTE = qualitative.Plotly + qualitative.Dark24
DROPPED = "#d62728"


@dataclass
class Routing:
    """One routing of a token batch, as the widget draws it."""

    x: torch.Tensor             # [T, 2] token inputs
    expert_index: torch.Tensor  # [T, k] chosen experts, best first
    gates: torch.Tensor         # [T, E] dense gates (zero outside the top k)
    kept: torch.Tensor          # [T, k] whether each assignment survived the capacity
    routed: torch.Tensor        # [E] assignments routed to each expert
    counts: torch.Tensor        # [E] assignments kept by each expert
    capacity: int | None

    @property
    def dropped(self) -> int:
        return int((~self.kept).sum())

    @property
    def lost_tokens(self) -> torch.Tensor:
        """[T] tokens that no expert processed."""
        return ~self.kept.any(1)


def route(x, w_gate, w_noise=None, k: int = 1, capacity_factor: float | None = 1.0,
          noise_scale: float = 0.0, seed: int = 0) -> Routing:
    """Route 2-D tokens with noisy top-k gating (a bias feature appended) and a capacity.

    x [T, 2], w_gate [3, E], w_noise [3, E] or None; capacity_factor None means no capacity.
    """
    T, E = x.shape[0], w_gate.shape[1]
    gating = noisy_top_k_gating(with_bias(x), w_gate, w_noise, k, train=noise_scale > 0,
                                generator=torch.Generator().manual_seed(seed), noise_scale=noise_scale)
    capacity = None if capacity_factor is None else expert_capacity(T, E, k, capacity_factor)
    out = dispatch(x, gating.expert_index, E, capacity)
    gates = torch.zeros(T, E).scatter(1, gating.expert_index, gating.gates)
    routed = torch.bincount(gating.expert_index.flatten(), minlength=E)
    return Routing(x, gating.expert_index, gates, out.slot >= 0, routed, out.counts, capacity)


def summary(r: Routing) -> str:
    """One line: capacity, assignments dropped, tokens lost."""
    T, k = r.kept.shape
    cap = "no capacity" if r.capacity is None else f"capacity {r.capacity} per expert"
    pct = 100 * r.dropped / max(1, T * k)
    return (f"{cap}; {r.dropped} of {T * k} assignments dropped ({pct:.1f}%); "
            f"{int(r.lost_tokens.sum())} of {T} tokens reach no expert")


def decision_regions(w_gate, extent: float, n: int = 80):
    """Top-1 expert of the noise-free router on an n x n grid over [-extent, extent]^2."""
    axis = torch.linspace(-extent, extent, n)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), dim=-1).reshape(-1, 2)
    return axis, (with_bias(grid) @ w_gate).argmax(1).reshape(n, n)


def panel_updates(r: Routing):
    """What the figure shows for a routing: {trace index: properties}, and the capacity line."""
    order = torch.argsort(r.expert_index[:, 0], stable=True)  # tokens grouped by first choice
    position = torch.empty_like(order)
    position[order] = torch.arange(len(order))
    lost = r.lost_tokens.tolist()
    dropped_t, dropped_j = (~r.kept).nonzero(as_tuple=True)
    E = r.gates.shape[1]
    traces = {
        1: dict(x=r.x[:, 0].tolist(), y=r.x[:, 1].tolist(), marker=dict(
            color=[DROPPED if l else PALETTE[e % len(PALETTE)]
                   for e, l in zip(r.expert_index[:, 0].tolist(), lost)],
            symbol=["x" if l else "circle" for l in lost], size=[9 if l else 6 for l in lost])),
        2: dict(z=r.gates[order].t().tolist()),
        3: dict(x=position[dropped_t].tolist(), y=r.expert_index[dropped_t, dropped_j].tolist()),
        4: dict(x=list(range(E)), y=r.counts.tolist()),
        5: dict(x=list(range(E)), y=(r.routed - r.counts).tolist()),
    }
    shapes = [] if r.capacity is None else [dict(
        type="line", xref="x3", yref="y3", x0=-0.5, x1=E - 0.5, y0=r.capacity, y1=r.capacity,
        line=dict(color="black", dash="dash"))]
    return traces, shapes


class RoutingWidget:
    """Controls (k, capacity factor, gate noise) over the three routing panels."""

    def __init__(self, x, w_gate, w_noise=None, k: int = 1, capacity_factor: float = 1.0,
                 noise_scale: float = 0.0, seed: int = 0):
        self.x, self.w_gate, self.w_noise, self.seed = x, w_gate, w_noise, seed
        E = w_gate.shape[1]
        style = dict(continuous_update=False, style={"description_width": "initial"})
        self.k = widgets.IntSlider(value=k, min=1, max=E, description="experts per token k", **style)
        self.capacity_factor = widgets.FloatSlider(value=capacity_factor, min=0.25, max=3.0, step=0.25,
                                                   description="capacity factor", **style)
        self.noise = widgets.FloatSlider(value=noise_scale, min=0.0, max=3.0, step=0.25,
                                         description="gate noise", disabled=w_noise is None, **style)
        self.summary = widgets.HTML()
        self.figure = self._empty_figure(E)
        for control in (self.k, self.capacity_factor, self.noise):
            control.observe(self.update, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.k, self.capacity_factor, self.noise]),
                                    self.summary, self.figure])
        self.update()

    def routing(self) -> Routing:
        return route(self.x, self.w_gate, self.w_noise, self.k.value, self.capacity_factor.value,
                     self.noise.value, self.seed)

    def _empty_figure(self, E: int) -> go.FigureWidget:
        fig = make_subplots(rows=1, cols=3, column_widths=[0.36, 0.36, 0.28], subplot_titles=(
            "tokens and decision regions", "gates (token x expert)", "expert load"))
        extent = float(self.x.abs().max()) * 1.1
        axis, regions = decision_regions(self.w_gate, extent)
        scale = [[i / max(1, E - 1), PALETTE[i % len(PALETTE)]] for i in range(E)]
        fig.add_trace(go.Heatmap(x=axis.tolist(), y=axis.tolist(), z=regions.tolist(), colorscale=scale,
                                 opacity=0.25,
                                 showscale=False, hoverinfo="skip", zmin=0, zmax=max(1, E - 1)), 1, 1)
        fig.add_trace(go.Scatter(mode="markers", name="tokens", showlegend=False), 1, 1)
        fig.add_trace(go.Heatmap(colorscale="Blues", zmin=0, zmax=1, showscale=False, name="gates"), 1, 2)
        fig.add_trace(go.Scatter(mode="markers", name="dropped", marker=dict(symbol="x", color=DROPPED,
                                                                            size=6)), 1, 2)
        fig.add_trace(go.Bar(name="kept", marker_color=[PALETTE[e % len(PALETTE)] for e in range(E)],
                             showlegend=False), 1, 3)
        fig.add_trace(go.Bar(name="dropped", marker_color=DROPPED, showlegend=False), 1, 3)
        fig.update_layout(barmode="stack", height=380, margin=dict(l=30, r=10, t=40, b=30),
                          legend=dict(orientation="h", y=-0.12))
        fig.update_xaxes(title_text="tokens, grouped by first expert", row=1, col=2)
        fig.update_yaxes(title_text="expert", row=1, col=2)
        fig.update_xaxes(title_text="expert", row=1, col=3)
        return go.FigureWidget(fig)

    def update(self, change=None):
        r = self.routing()
        traces, shapes = panel_updates(r)
        for index, props in traces.items():
            # one trace per batch: plotly merges a multi-trace batch into a restyle whose missing
            # entries reach plotly.js as null, which resets the other traces' markers
            with self.figure.batch_update():
                self.figure.data[index].update(**props)
        self.figure.layout.shapes = shapes
        self.summary.value = f"<b>{summary(r)}</b>"

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
