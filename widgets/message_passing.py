"""The message-passing widget: node states as colour, the messages of each round along the edges,
the receptive field of a chosen node, and the Dirichlet energy against depth (oversmoothing).

A small contextual SBM (two classes, ~36 nodes) with a fixed spectral layout. A node's colour is its
state projected on the direction between the two class means of the input features (blue one class,
red the other; the scale is the input's). Three models propagate the features:
  GCN  H' = tanh(S H W) with S = D~^-1/2 (A + I) D~^-1/2 and seeded weights near the identity;
  SGC  H' = S H (Wu et al. 2019: the same propagation without weights or nonlinearity);
  GAT  one seeded GAT layer per round (Velickovic et al. 2018), its attention as edge widths.
At round r of a depth-d model, the messages that reach the chosen node by the last round are drawn:
edges into nodes within d - r hops of it, from nodes within d - r + 1 hops, as wide as their weight.
The second panel is the Dirichlet energy of the states (course.gnn.smoothing) per round, for the
three models, relative to the input's: how fast each one smooths the features away.
The widget never trains: a model given by the caller (`layers`) replaces the seeded GAT layers.
The logic (`graph_for`, `layout`, `hops_from`, `propagate_states`, `message_edges`, `energy_curves`,
`summary`) is plain Python, testable without a browser.
"""
import functools
import math
from dataclasses import dataclass

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from course.checks import check_int
from course.gnn import GATConv, Graph, add_self_loops, gcn_norm
from course.gnn.datasets import csbm, edge_homophily
from course.gnn.smoothing import dirichlet_energy
from course.train import seeded
from course.widgets.view import FitPlotsToWidth, View, control_layout, wrapping_row

MODELS = ("GCN", "SGC", "GAT")
MODEL_COLORS = {"GCN": "#1f77b4", "SGC": "#2ca02c", "GAT": "#ff7f0e"}
FIELD = "#9467bd"  # the receptive field's outline and its messages
CHOSEN = "#000000"
NUM_NODES, FEATURES, MAX_DEPTH = 36, 8, 8
WIDTH_BINS = 4  # messages are drawn in this many widths


@functools.lru_cache(maxsize=32)
def graph_for(homophily: float, seed: int = 0) -> Graph:
    """The widget's graph: a 2-class CSBM of NUM_NODES nodes, about 4 neighbours each."""
    return csbm(NUM_NODES, 2, homophily=homophily, degree=4.0, features=FEATURES, signal=1.0, seed=seed)


def layout(graph: Graph) -> torch.Tensor:
    """A spectral layout: the 2nd and 3rd eigenvectors of S (largest after the trivial one), spread
    by a few steps of repulsion so that nodes do not overlap. -> positions [N, 2] in [-1, 1]."""
    s = torch.zeros(graph.num_nodes, graph.num_nodes, dtype=torch.float64)
    p = gcn_norm(graph)
    rows = torch.repeat_interleave(torch.arange(graph.num_nodes), p.rowptr.diff())
    s.index_put_((rows, p.col), p.weight.double(), accumulate=True)
    _, vectors = torch.linalg.eigh((s + s.T) / 2)
    pos = vectors[:, -3:-1].flip(1).clone()
    for _ in range(50):  # repulsion between close nodes
        delta = pos[:, None, :] - pos[None, :, :]
        dist2 = (delta ** 2).sum(-1) + torch.eye(len(pos))
        pos = pos + 0.002 * (delta / dist2[..., None]).sum(1)
        pos = (pos - pos.mean(0)) / pos.abs().max()
    return pos.float()


def hops_from(graph: Graph, node: int, depth: int) -> torch.Tensor:
    """Hop distance from each node to `node` along edges towards it (BFS), -1 beyond `depth`. [N]"""
    check_int("message_passing.hops_from", "node", node, low=0, high=graph.num_nodes - 1)
    check_int("message_passing.hops_from", "depth", depth, low=0)
    hops = torch.full((graph.num_nodes,), -1)
    hops[node] = 0
    for k in range(1, depth + 1):
        reached = hops >= 0
        frontier = reached[graph.destination] & ~reached[graph.source]  # j -> i with i reached
        hops[graph.source[frontier]] = torch.where(hops[graph.source[frontier]] < 0, k,
                                                   hops[graph.source[frontier]])
    return hops


def seeded_gat_layers(depth: int, features: int = FEATURES, seed: int = 0):
    """`depth` GAT layers with seeded weights: identity-like projections, and attention vectors
    scaled up so that the weights visibly differ between neighbours."""
    layers = []
    with seeded(seed), torch.no_grad():
        for _ in range(depth):
            layer = GATConv(features, features, heads=1)
            layer.linear.weight.copy_(torch.eye(features) + 0.2 * torch.randn(features, features))
            layer.att_src.mul_(3.0)
            layer.att_dst.mul_(3.0)
            layers.append(layer)
    return layers


@dataclass
class Propagation:
    """The states after each round and, per round, the weight of each edge of the looped graph."""

    states: list  # depth + 1 tensors [N, F]
    weights: list  # depth tensors [E'] in the edge order of `looped`
    looped: Graph  # the graph with one self-loop per node: what every model aggregates over


def propagate_states(graph: Graph, model: str, depth: int, seed: int = 0, layers=None) -> Propagation:
    """Run `model` (GCN, SGC, GAT) for `depth` rounds from graph.x, keeping every round."""
    if model not in MODELS:
        raise ValueError(f"message_passing: `model` must be one of {MODELS}; got {model!r}.")
    check_int("message_passing.propagate_states", "depth", depth, low=0, high=MAX_DEPTH)
    looped = add_self_loops(graph)
    s = gcn_norm(graph)
    gcn_weight = torch.empty(looped.num_edges)
    gcn_weight[looped.csr.perm] = s.weight  # gcn_norm's CSR is the looped graph's CSR
    states, weights = [graph.x], []
    with torch.no_grad(), seeded(seed):
        gat = layers if layers is not None else seeded_gat_layers(depth, graph.x.shape[1], seed)
        mixing = [torch.eye(graph.x.shape[1]) + 0.3 * torch.randn(graph.x.shape[1], graph.x.shape[1])
                  / math.sqrt(graph.x.shape[1]) for _ in range(depth)]
        for r in range(depth):
            h = states[-1]
            if model == "SGC":
                states.append(s(h, backend="reference"))
                weights.append(gcn_weight)
            elif model == "GCN":
                states.append(torch.tanh(s(h @ mixing[r], backend="reference")))
                weights.append(gcn_weight)
            else:
                states.append(gat[r](graph, h, keep_attention=True))
                alpha = torch.empty(looped.num_edges)
                alpha[looped.csr.perm] = gat[r].last_attention[:, 0]
                weights.append(alpha)
    return Propagation(states, weights, looped)


def class_direction(graph: Graph) -> torch.Tensor:
    """The unit vector from class 0's mean input to class 1's. [F]"""
    d = graph.x[graph.y == 1].mean(0) - graph.x[graph.y == 0].mean(0)
    return d / d.norm().clamp(min=1e-12)


def colours(graph: Graph, state: torch.Tensor) -> torch.Tensor:
    """A node's state on the class direction (the colour the widget draws). [N]"""
    return state @ class_direction(graph)


def message_edges(p: Propagation, hops: torch.Tensor, depth: int, round_: int) -> torch.Tensor:
    """The edges of round `round_` whose messages reach the chosen node by round `depth`: into nodes
    within depth - round_ hops, from nodes within depth - round_ + 1. Boolean [E'] (none at round 0)."""
    if round_ == 0:
        return torch.zeros(p.looped.num_edges, dtype=torch.bool)
    near = (hops >= 0) & (hops <= depth - round_)
    far = (hops >= 0) & (hops <= depth - round_ + 1)
    return near[p.looped.destination] & far[p.looped.source]


def energy_curves(graph: Graph, depth: int = MAX_DEPTH, seed: int = 0, layers=None) -> dict:
    """Dirichlet energy of each model's states at rounds 0..depth, over the input's. {model: [d + 1]}"""
    base = max(dirichlet_energy(graph, graph.x), 1e-30)
    return {m: [dirichlet_energy(graph, h) / base for h in propagate_states(graph, m, depth, seed, layers).states]
            for m in MODELS}


def summary(graph: Graph, model: str, depth: int, round_: int, node: int, hops, curves) -> str:
    field = int(((hops >= 0) & (hops <= depth)).sum())
    return (f"{model}, round {round_} of {depth}: node {node}'s receptive field holds {field} of "
            f"{graph.num_nodes} nodes (within {depth} hops); Dirichlet energy "
            f"{curves[model][round_]:.2g} of the input's; edge homophily {edge_homophily(graph):.2f}")


class MessagePassingWidget(View):
    """Controls (model, depth, round, node, homophily) over the graph and the energy panel.

    `layers`, when given, is a list of MAX_DEPTH GAT layers (e.g. trained by the caller) used in
    place of the seeded ones.
    """

    gallery_control = "round"

    def __init__(self, model: str = "GCN", depth: int = 3, node: int = 0, homophily: float = 0.8,
                 seed: int = 0, layers=None):
        if model not in MODELS:
            raise ValueError(f"MessagePassingWidget: `model` must be one of {MODELS}; got {model!r}.")
        check_int("MessagePassingWidget", "depth", depth, low=1, high=MAX_DEPTH)
        check_int("MessagePassingWidget", "node", node, low=0, high=NUM_NODES - 1)
        if not (isinstance(homophily, (int, float)) and 0 <= homophily <= 1):
            raise ValueError(f"MessagePassingWidget: `homophily` must be a number in [0, 1]; got {homophily!r}.")
        if layers is not None and len(layers) < MAX_DEPTH:
            raise ValueError(f"MessagePassingWidget: `layers` must hold {MAX_DEPTH} GAT layers (one per "
                             f"round up to the deepest); got {len(layers)}.")
        self.seed, self.layers = seed, layers
        style = dict(continuous_update=False, style={"description_width": "initial"})
        self.model = widgets.ToggleButtons(options=MODELS, value=model, description="model",
                                           style={"button_width": "60px"},
                                           layout=widgets.Layout(flex="0 0 auto"))
        self.depth = widgets.IntSlider(value=depth, min=1, max=MAX_DEPTH, description="depth",
                                       layout=control_layout(), **style)
        self.round = widgets.IntSlider(value=0, min=0, max=depth, description="round",
                                       layout=control_layout(), **style)
        self.node = widgets.IntSlider(value=node, min=0, max=NUM_NODES - 1, description="chosen node",
                                      layout=control_layout(), **style)
        self.homophily = widgets.FloatSlider(value=float(homophily), min=0.0, max=1.0, step=0.1,
                                             description="homophily", layout=control_layout(), **style)
        self.summary = widgets.HTML()
        self.figure = self._empty_figure()
        for control in (self.model, self.depth, self.round, self.node, self.homophily):
            control.observe(self.update, names="value")
        self.widget = widgets.VBox([
            wrapping_row([self.model, self.depth, self.round]), wrapping_row([self.node, self.homophily]),
            self.summary, self.figure, FitPlotsToWidth()], layout=widgets.Layout(width="100%", overflow="auto"))
        self.update()

    def state(self):
        """Everything the panels draw for the current controls."""
        graph = graph_for(round(self.homophily.value, 2), self.seed)
        p = propagate_states(graph, self.model.value, self.depth.value, self.seed, self.layers)
        hops = hops_from(graph, self.node.value, self.depth.value)
        curves = energy_curves(graph, MAX_DEPTH, self.seed, self.layers)
        return graph, layout_of(graph), p, hops, curves

    def _empty_figure(self) -> go.FigureWidget:
        fig = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], horizontal_spacing=0.1,
                            subplot_titles=("node states and this round's messages",
                                            "Dirichlet energy against depth"))
        fig.add_trace(go.Scatter(mode="lines", line=dict(color="#cccccc", width=1), hoverinfo="skip",
                                 name="edges", showlegend=False), 1, 1)
        for b in range(WIDTH_BINS):
            fig.add_trace(go.Scatter(mode="lines", line=dict(color=FIELD, width=1.5 + 2.5 * b),
                                     hoverinfo="skip", name="messages" if b == WIDTH_BINS - 1 else None,
                                     showlegend=b == WIDTH_BINS - 1), 1, 1)
        fig.add_trace(go.Scatter(mode="markers", name="nodes", showlegend=False, marker=dict(
            size=12, colorscale="RdBu_r", cmid=0, colorbar=dict(title=dict(text="state", side="right"),
                                                                x=0.56, len=0.9, thickness=10))), 1, 1)
        for m in MODELS:
            fig.add_trace(go.Scatter(mode="lines+markers", name=m, line=dict(color=MODEL_COLORS[m])), 1, 2)
        fig.add_trace(go.Scatter(mode="markers", name="this round", marker=dict(
            size=14, symbol="circle-open", color=CHOSEN, line=dict(width=2))), 1, 2)
        fig.update_layout(height=440, autosize=True, margin=dict(l=40, r=10, t=40, b=40),
                          legend=dict(orientation="h", x=0.62, y=-0.12))
        fig.update_xaxes(visible=False, range=[-1.15, 1.15], row=1, col=1)
        fig.update_yaxes(visible=False, range=[-1.15, 1.15], row=1, col=1)
        fig.update_xaxes(title_text="round (depth)", dtick=1, row=1, col=2)
        fig.update_yaxes(title_text="energy / input's", type="log", row=1, col=2)
        widget = go.FigureWidget(fig)
        widget._config = {**widget._config, "responsive": True}
        return widget

    def update(self, change=None):
        self.round.max = self.depth.value
        graph, pos, p, hops, curves = self.state()
        r = min(self.round.value, self.depth.value)
        traces = panel_traces(graph, pos, p, hops, curves, self.model.value, self.depth.value, r, self.node.value)
        for index, props in enumerate(traces):
            with self.figure.batch_update():
                self.figure.data[index].update(**props)
        self.summary.value = f"<b>{summary(graph, self.model.value, self.depth.value, r, self.node.value, hops, curves)}</b>"

    def snapshot(self):
        """The two panels as a static matplotlib figure."""
        import matplotlib.pyplot as plt
        from matplotlib.collections import LineCollection

        graph, pos, p, hops, curves = self.state()
        r = min(self.round.value, self.depth.value)
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), width_ratios=[0.6, 0.4], layout="constrained")
        segments = torch.stack([pos[p.looped.source], pos[p.looped.destination]], 1).numpy()
        axes[0].add_collection(LineCollection(segments, colors="#cccccc", linewidths=0.8))
        active = message_edges(p, hops, self.depth.value, r)
        if active.any():
            w = p.weights[r - 1][active]
            axes[0].add_collection(LineCollection(segments[active.numpy()], colors=FIELD,
                                                  linewidths=(1 + 6 * w / w.max()).numpy()))
        c = colours(graph, p.states[r])
        scale = float(colours(graph, graph.x).abs().max())
        field = (hops >= 0) & (hops <= self.depth.value)
        points = axes[0].scatter(pos[:, 0], pos[:, 1], c=c, cmap="RdBu_r", vmin=-scale, vmax=scale, s=60,
                                 edgecolors=[FIELD if f else "white" for f in field.tolist()], linewidths=1.5)
        axes[0].scatter(pos[self.node.value, 0], pos[self.node.value, 1], marker="*", s=200, c=CHOSEN)
        fig.colorbar(points, ax=axes[0], label="state on the class direction", fraction=0.04)
        axes[0].set(title="node states and this round's messages", xticks=[], yticks=[])
        for m in MODELS:
            axes[1].semilogy(range(MAX_DEPTH + 1), curves[m], "o-", color=MODEL_COLORS[m], label=m, ms=3)
        axes[1].set(title="Dirichlet energy against depth", xlabel="round (depth)", ylabel="energy / input's")
        axes[1].legend()
        fig.supxlabel(summary(graph, self.model.value, self.depth.value, r, self.node.value, hops, curves),
                      fontsize=9)
        return fig


_LAYOUTS = {}


def layout_of(graph: Graph) -> torch.Tensor:
    """`layout`, computed once per graph object."""
    key = id(graph)
    if key not in _LAYOUTS:
        _LAYOUTS[key] = (graph, layout(graph))
    return _LAYOUTS[key][1]


def _lines(pos, source, destination):
    """x and y lists of line segments separated by None (plotly draws them as one trace)."""
    xs, ys = [], []
    for j, i in zip(source.tolist(), destination.tolist()):
        xs += [float(pos[j, 0]), float(pos[i, 0]), None]
        ys += [float(pos[j, 1]), float(pos[i, 1]), None]
    return xs, ys


def panel_traces(graph, pos, p, hops, curves, model, depth, round_, node) -> list[dict]:
    """The properties of every trace of the figure, in trace order."""
    plain = ~p.looped.self_loops()
    xs, ys = _lines(pos, p.looped.source[plain], p.looped.destination[plain])
    out = [dict(x=xs, y=ys)]
    active = message_edges(p, hops, depth, round_) & plain
    if active.any():
        w = p.weights[round_ - 1]
        level = (w / w[active].max() * WIDTH_BINS).ceil().clamp(1, WIDTH_BINS) - 1
    for b in range(WIDTH_BINS):
        pick = active & (level == b) if active.any() else active
        bx, by = _lines(pos, p.looped.source[pick], p.looped.destination[pick])
        out.append(dict(x=bx, y=by))
    field = (hops >= 0) & (hops <= depth)
    scale = float(colours(graph, graph.x).abs().max())
    out.append(dict(x=pos[:, 0].tolist(), y=pos[:, 1].tolist(), marker=dict(
        color=colours(graph, p.states[round_]).tolist(), cmin=-scale, cmax=scale,
        symbol=["star" if v == node else "circle" for v in range(graph.num_nodes)],
        size=[18 if v == node else 12 for v in range(graph.num_nodes)],
        line=dict(color=[FIELD if f else "white" for f in field.tolist()], width=2)),
        text=[f"node {v}, class {int(graph.y[v])}, {int(hops[v])} hops" if hops[v] >= 0
              else f"node {v}, class {int(graph.y[v])}" for v in range(graph.num_nodes)]))
    for m in MODELS:
        out.append(dict(x=list(range(MAX_DEPTH + 1)), y=curves[m]))
    out.append(dict(x=[round_], y=[curves[model][round_]]))
    return out


def gallery() -> MessagePassingWidget:
    """The widget on ready data, for the browser gallery: GAT, depth 3, node 0, homophily 0.8."""
    return MessagePassingWidget(model="GAT", depth=3, node=0, homophily=0.8)
