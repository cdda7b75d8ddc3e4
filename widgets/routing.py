"""The routing widget: where each token goes, how loaded each expert is, and who is dropped.

Three panels: the tokens in their 2-D input space over the router's decision regions (dropped tokens
marked x), the gate of every (token, expert) pair as a heatmap (dropped assignments marked), and each
expert's load as bars with the capacity line. Three routers:
  top-k  noisy top-k gating (Shazeer et al. 2017), then dispatch with a Switch-style capacity;
  SMEAR  soft merging (Muqeeth et al. 2023): every token averages all experts by its router
         probabilities, so nothing is dispatched or dropped, and the load is soft;
  OT     a k-sparse, balanced optimal-transport plan (Liu et al. 2023) in place of top-k.
Controls re-route the same tokens; the balance-loss weight asks a training function given by the
caller (the library's, not the widget's) for new router weights, once per value.
The logic (`route`, `summary`, `panel_updates`) is plain Python, testable without a browser.
"""
from dataclasses import dataclass

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from course.moe import cv_squared, dispatch, expert_capacity, noisy_top_k_gating, with_bias

PALETTE = qualitative.Plotly + qualitative.Dark24
DROPPED = "#d62728"
ROUTERS = ("top-k", "SMEAR", "OT")
BALANCE_WEIGHTS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)


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
    expert_index, gates = gating.expert_index, gating.gates
    if router == "OT":
        from course.moe.sparse_ot import sparse_ot_route

        expert_index, gates = sparse_ot_route(gating.logits, k)
    capacity = None if capacity_factor is None else expert_capacity(T, E, k, capacity_factor)
    out = dispatch(x, expert_index, E, capacity)
    dense = torch.zeros(T, E).scatter(1, expert_index, gates)
    routed = torch.bincount(expert_index.flatten(), minlength=E)
    return Routing(x, expert_index, dense, out.slot >= 0, routed, out.counts, capacity, router)


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
            color=[DROPPED if gone else PALETTE[e % len(PALETTE)]
                   for e, gone in zip(r.expert_index[:, 0].tolist(), lost)],
            symbol=["x" if gone else "circle" for gone in lost], size=[9 if gone else 6 for gone in lost])),
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
    """Controls (router, k, capacity factor, gate noise, balance-loss weight) over the three panels.

    `train_router(w_balance) -> (w_gate, w_noise)`, when given, retrains the router for a balance-loss
    weight; each weight is trained once and remembered.
    """

    def __init__(self, x, w_gate, w_noise=None, k: int = 1, capacity_factor: float = 1.0,
                 noise_scale: float = 0.0, seed: int = 0, train_router=None):
        self.x, self.seed, self.train_router = x, seed, train_router
        self.trained = {}
        self.w_gate, self.w_noise = w_gate, w_noise
        E = w_gate.shape[1]
        style = dict(continuous_update=False, style={"description_width": "initial"})
        self.router = widgets.ToggleButtons(options=ROUTERS, value="top-k", description="router",
                                            style={"button_width": "70px"})
        self.k = widgets.IntSlider(value=k, min=1, max=E, description="experts per token k", **style)
        self.capacity_factor = widgets.FloatSlider(value=capacity_factor, min=0.25, max=3.0, step=0.25,
                                                   description="capacity factor", **style)
        self.noise = widgets.FloatSlider(value=noise_scale, min=0.0, max=3.0, step=0.25,
                                         description="gate noise", disabled=w_noise is None, **style)
        self.balance = widgets.SelectionSlider(options=BALANCE_WEIGHTS, value=BALANCE_WEIGHTS[0],
                                               description="balance-loss weight",
                                               disabled=train_router is None, **style)
        self.summary = widgets.HTML()
        self.figure = self._empty_figure(E)
        for control in (self.router, self.k, self.capacity_factor, self.noise):
            control.observe(self.update, names="value")
        self.balance.observe(self.retrain, names="value")
        self.widget = widgets.VBox([
            widgets.HBox([self.router, self.k, self.capacity_factor]),
            widgets.HBox([self.noise, self.balance]), self.summary, self.figure])
        if train_router is not None:
            self.retrain()
        self.update()

    def retrain(self, change=None):
        """New router weights for the chosen balance-loss weight (trained once per weight)."""
        w = self.balance.value
        if w not in self.trained:
            self.trained[w] = self.train_router(w)
        self.w_gate, self.w_noise = self.trained[w]
        self.figure.data[0].z = decision_regions(self.w_gate, self.extent)[1].tolist()
        if change is not None:
            self.update()

    def routing(self) -> Routing:
        return route(self.x, self.w_gate, self.w_noise, self.k.value, self.capacity_factor.value,
                     self.noise.value, self.seed, self.router.value)

    def _empty_figure(self, E: int) -> go.FigureWidget:
        fig = make_subplots(rows=1, cols=3, column_widths=[0.36, 0.36, 0.28], subplot_titles=(
            "tokens and decision regions", "gates (token x expert)", "expert load"))
        self.extent = float(self.x.abs().max()) * 1.1
        axis, regions = decision_regions(self.w_gate, self.extent)
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
