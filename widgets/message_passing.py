"""The message-passing widget: node states as colour, the messages of each round along the edges,
the receptive field of a chosen node, and the Dirichlet energy against depth (oversmoothing).

A small contextual SBM (two classes, NUM_NODES nodes) drawn with a fixed layout (a spectral start,
then a spring layout; computed once per graph). A node's colour is its state projected on the
direction between the two classes' mean inputs (blue one class, red the other), on the input's scale,
so that states which fade towards white have lost what told the classes apart. The models are the
library's seeded GCN, SGC and GAT (`course.gnn.smoothing.propagate_states`: no training).
At round r of a depth-d model, the messages that reach the chosen node by round d are drawn: the
edges into nodes within d - r hops of it, from nodes within d - r + 1 hops, as wide as their weight
(GCN's and SGC's are S's entries, GAT's its alpha_ij). The outlined nodes are the receptive field:
every node within d hops.

The second panel is the Dirichlet energy of each model's states per round, relative to the input's
(Cai and Wang 2020, `course.gnn.smoothing.energy_curves`): GCN's and SGC's fall every round on a
connected graph; GAT's attention is no fixed low-pass filter, and no bound holds for it.

The widget never trains: a list of GAT layers given by the caller (`layers`) replaces the seeded ones.
The logic (`graph_for`, `layout`, `hops_from`, `receptive_field`, `message_edges`, `summary`,
`panel_traces`) is plain Python, tested without a browser.
"""
import functools
import math

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from course.checks import check_int, check_tensor
from course.gnn import Graph, gcn_norm
from course.gnn.datasets import csbm, edge_homophily
from course.gnn.smoothing import MODELS, Rounds, check_layers, energy_curves, propagate_states
from course.widgets.view import FitPlotsToWidth, View, control_layout, update_traces, wrapping_row

WHERE = "widgets.message_passing"
# One colour per model (energy panel); the receptive field and its messages in a colour that neither
# the models nor the node-state scale (red-blue) use; the chosen node in black.
MODEL_COLORS = {"GCN": "#1f77b4", "SGC": "#2ca02c", "GAT": "#ff7f0e"}
FIELD = "#9467bd"
CHOSEN = "#000000"
EDGE = "#cccccc"
NUM_NODES, FEATURES, MAX_DEPTH = 36, 8, 8
WIDTH_BINS = 4  # messages are drawn in this many widths
LAYOUT_STEPS = 300
KEY = ("colour: state on the class direction; purple: this round's messages, as wide as their weight;",
       "outlined: the receptive field; star: the chosen node")
KEY_HTML = (f"colour: state on the class direction<br><span style='color:{FIELD}'>purple</span>: this "
            "round's messages, as wide as<br>their weight; outlined: the receptive field; "
            "star: the chosen node")


def check_graph(where: str, graph, features: bool = True):
    if not isinstance(graph, Graph):
        raise TypeError(f"{where}: `graph` must be a course.gnn.Graph; got {type(graph).__name__}.")
    if features:
        if graph.x is None:
            raise ValueError(f"{where}: `graph` must carry node features x [N, F]; got graph.x = None.")
        check_tensor(where, "graph.x", graph.x, ndim=2, kind="float")


def check_homophily(where: str, homophily):
    if isinstance(homophily, bool) or not isinstance(homophily, (int, float)) \
            or not 0 <= homophily <= 1:
        raise ValueError(f"{where}: `homophily` must be a number in [0, 1]; got {homophily!r}.")


def graph_for(homophily: float, seed: int = 0) -> Graph:
    """The widget's graph: a 2-class CSBM of NUM_NODES nodes, about 4 neighbours each, x [N, FEATURES];
    one graph object per (homophily, seed)."""
    check_homophily(f"{WHERE}.graph_for", homophily)
    check_int(f"{WHERE}.graph_for", "seed", seed)
    return _graph(float(homophily), seed)


@functools.lru_cache(maxsize=32)
def _graph(homophily: float, seed: int) -> Graph:
    return csbm(NUM_NODES, 2, homophily=homophily, degree=4.0, features=FEATURES, signal=1.0, seed=seed)


def dense_propagation(graph: Graph) -> torch.Tensor:
    """S = D~^-1/2 (A + I) D~^-1/2 as a dense float64 matrix [N, N] (S[i, j]: edge j -> i)."""
    p = gcn_norm(graph)
    rows = torch.repeat_interleave(torch.arange(graph.num_nodes), p.rowptr.diff())
    s = torch.zeros(graph.num_nodes, graph.num_nodes, dtype=torch.float64)
    return s.index_put_((rows, p.col.long()), p.weight.double(), accumulate=True)


def spectral_positions(graph: Graph) -> torch.Tensor:
    """The eigenvectors of S with the 2nd and 3rd largest eigenvalues (the smoothest non-constant
    signals of the graph), each scaled to [-1, 1]. -> [N, 2] (zeros for N < 3)"""
    n = graph.num_nodes
    if n < 3:
        return torch.zeros(n, 2, dtype=torch.float64)
    s = dense_propagation(graph)
    _, vectors = torch.linalg.eigh((s + s.T) / 2)  # ascending eigenvalues
    pos = vectors[:, [-2, -3]]
    pos = pos * torch.where(pos[0] < 0, -1.0, 1.0)  # a fixed sign, whatever the eigensolver returns
    return pos / pos.abs().amax(0).clamp(min=1e-12)


def layout(graph: Graph, steps: int = LAYOUT_STEPS) -> torch.Tensor:
    """Node positions [N, 2] in [-1, 1]: the spectral positions, then `steps` steps of a spring layout
    (Fruchterman and Reingold 1991: neighbours attract with d^2 / k, all pairs repel with k^2 / d,
    moves capped by a temperature that cools to zero), plus a weak pull to the centre that keeps
    components together. Deterministic; `layout_of` computes it once per graph."""
    check_graph(f"{WHERE}.layout", graph, features=False)
    check_int(f"{WHERE}.layout", "steps", steps, low=0)
    n = graph.num_nodes
    if n < 2:
        return torch.zeros(n, 2)
    jitter = torch.rand(n, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 0.5
    pos = spectral_positions(graph) + 0.05 * jitter  # nodes that share a position are pushed apart
    a = graph.to_dense().double()
    a = ((a + a.T) > 0).double() * (1 - torch.eye(n, dtype=torch.float64))  # [N, N] either direction
    k = 2.0 / math.sqrt(n)  # the ideal edge length in the [-1, 1]^2 box
    for t in range(steps):
        delta = pos[:, None, :] - pos[None, :, :]  # [N, N, 2] from j to i
        dist = delta.norm(dim=-1).clamp(min=1e-3)  # [N, N]
        push = k * k / dist ** 2 - a * dist / k  # repulsion minus attraction, per unit of delta
        force = (push[..., None] * delta).sum(1) - 0.1 * pos / k  # [N, 2]
        temperature = 0.1 * (1 - t / steps)
        length = force.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        pos = pos + force / length * length.clamp(max=temperature)
    pos = pos - (pos.amax(0) + pos.amin(0)) / 2
    return (pos / pos.abs().max().clamp(min=1e-12)).float()


@functools.lru_cache(maxsize=64)
def layout_of(graph: Graph) -> torch.Tensor:
    """`layout(graph)`, computed once per graph object (the cache holds the graph, so its id stays)."""
    return layout(graph)


def hops_from(graph: Graph, node: int, depth: int) -> torch.Tensor:
    """Hops from each node to `node` along the edges towards it (a BFS), -1 beyond `depth`. [N]"""
    where = f"{WHERE}.hops_from"
    check_graph(where, graph, features=False)
    check_int(where, "node", node, low=0, high=graph.num_nodes - 1)
    check_int(where, "depth", depth, low=0)
    hops = torch.full((graph.num_nodes,), -1)
    hops[node] = 0
    for k in range(1, depth + 1):
        reached = hops >= 0
        frontier = reached[graph.destination] & ~reached[graph.source]  # j -> i, i reached, j not yet
        if not frontier.any():
            break
        hops[graph.source[frontier]] = k
    return hops


def receptive_field(graph: Graph, node: int, depth: int) -> torch.Tensor:
    """The nodes whose inputs reach `node` in `depth` rounds: those within `depth` hops. bool [N]"""
    return hops_from(graph, node, depth) >= 0


def class_direction(graph: Graph) -> torch.Tensor:
    """The unit vector from class 0's mean input to class 1's. [F]"""
    d = graph.x[graph.y == 1].mean(0) - graph.x[graph.y == 0].mean(0)
    return d / d.norm().clamp(min=1e-12)


def colours(graph: Graph, state: torch.Tensor) -> torch.Tensor:
    """A node's state on the class direction (the colour the widget draws). [N, F] -> [N]"""
    return state @ class_direction(graph)


def message_edges(p: Rounds, hops: torch.Tensor, round_: int) -> torch.Tensor:
    """The messages of round `round_` that reach the chosen node by the last round: edges (self-loops
    included) into nodes within depth - round_ hops, from nodes within depth - round_ + 1.
    `hops` [N] from `hops_from(graph, node, depth)`. -> bool [E'] (none at round 0)."""
    check_int(f"{WHERE}.message_edges", "round_", round_, low=0, high=p.depth)
    if round_ == 0:
        return torch.zeros(p.looped.num_edges, dtype=torch.bool)
    near = (hops >= 0) & (hops <= p.depth - round_)
    far = (hops >= 0) & (hops <= p.depth - round_ + 1)
    return near[p.looped.destination] & far[p.looped.source]


def summary(graph: Graph, model: str, depth: int, round_: int, node: int, hops, curves) -> str:
    """One line: the round, the chosen node's receptive field, the energy left, the graph's homophily."""
    field = int((hops >= 0).sum())
    return (f"{model}, round {round_} of {depth}: node {node}'s receptive field holds {field} of "
            f"{graph.num_nodes} nodes (within {depth} hops); Dirichlet energy "
            f"{curves[model][round_]:.2g} of the input's; edge homophily {edge_homophily(graph):.2f}")


def _lines(pos, source, destination):
    """x and y lists of line segments separated by None (plotly draws them as one trace)."""
    xs, ys = [], []
    for j, i in zip(source.tolist(), destination.tolist()):
        xs += [float(pos[j, 0]), float(pos[i, 0]), None]
        ys += [float(pos[j, 1]), float(pos[i, 1]), None]
    return xs, ys


def width_levels(weights: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """Each active message's width bin, 0..WIDTH_BINS - 1, by its weight over the largest active one.
    weights, active [E'] -> long [E'] (-1 where not active)."""
    if not active.any():
        return torch.full(weights.shape, -1)
    level = (weights / weights[active].max() * WIDTH_BINS).ceil().clamp(1, WIDTH_BINS).long() - 1
    return torch.where(active, level, -1)


def panel_traces(graph, pos, p: Rounds, hops, curves, model, round_, node) -> list[dict]:
    """The properties of every trace of the figure, in trace order: the edges, the messages in
    WIDTH_BINS widths, the nodes, one energy curve per model, and this round's mark on its curve."""
    plain = ~p.looped.self_loops()  # a node's message to itself is not drawn
    out = [dict(zip("xy", _lines(pos, p.looped.source[plain], p.looped.destination[plain])))]
    active = message_edges(p, hops, round_) & plain
    level = width_levels(p.weights[round_ - 1] if round_ else torch.zeros(len(active)), active)
    for b in range(WIDTH_BINS):
        pick = level == b
        out.append(dict(zip("xy", _lines(pos, p.looped.source[pick], p.looped.destination[pick]))))
    field = (hops >= 0).tolist()
    scale = float(colours(graph, graph.x).abs().max())
    n = graph.num_nodes
    out.append(dict(x=pos[:, 0].tolist(), y=pos[:, 1].tolist(), marker=dict(
        color=colours(graph, p.states[round_]).tolist(), cmin=-scale, cmax=scale,
        symbol=["star" if v == node else "circle" for v in range(n)],
        size=[20 if v == node else 12 for v in range(n)],
        line=dict(color=[CHOSEN if v == node else FIELD if field[v] else "white" for v in range(n)],
                  width=[2.5 if field[v] else 1 for v in range(n)])),
        text=[f"node {v}, class {int(graph.y[v])}" + (f", {int(hops[v])} hops" if field[v] else "")
              for v in range(n)]))
    for m in MODELS:
        out.append(dict(x=list(range(len(curves[m]))), y=curves[m]))
    out.append(dict(x=[round_], y=[curves[model][round_]]))
    return out


class MessagePassingWidget(View):
    """Controls (model, depth, round, chosen node, homophily) over the graph and the energy panel.

    `layers`, when given, is a list of MAX_DEPTH GAT layers (GATConv, FEATURES -> FEATURES, e.g.
    trained by the caller) used in place of the seeded ones. Every control applies in every model.
    """

    gallery_control = "round"

    def __init__(self, model: str = "GCN", depth: int = 3, node: int = 0, homophily: float = 0.8,
                 seed: int = 0, layers=None):
        where = "MessagePassingWidget"
        if model not in MODELS:
            raise ValueError(f"{where}: `model` must be one of {MODELS}; got {model!r}.")
        check_int(where, "depth", depth, low=1, high=MAX_DEPTH)
        check_int(where, "node", node, low=0, high=NUM_NODES - 1)
        check_homophily(where, homophily)
        check_int(where, "seed", seed)
        if layers is not None:
            check_layers(where, layers, MAX_DEPTH, FEATURES)
        self.seed, self.layers = seed, layers
        self._curves = {}  # energy curves per graph: they do not depend on the other controls
        self._busy = False
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
            self.summary, self.figure, FitPlotsToWidth()],
            layout=widgets.Layout(width="100%", overflow="auto"))
        self.update()

    def graph(self) -> Graph:
        return graph_for(round(self.homophily.value, 2), self.seed)

    def state(self):
        """Everything the panels draw for the current controls: graph, positions, rounds, hops, curves."""
        graph = self.graph()
        if graph not in self._curves:
            self._curves[graph] = energy_curves(graph, MAX_DEPTH, self.seed, self.layers)
        p = propagate_states(graph, self.model.value, self.depth.value, self.seed, self.layers)
        hops = hops_from(graph, self.node.value, self.depth.value)
        return graph, layout_of(graph), p, hops, self._curves[graph]

    def _empty_figure(self) -> go.FigureWidget:
        fig = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], horizontal_spacing=0.18,
                            subplot_titles=("node states and messages", "Dirichlet energy / input's"))
        fig.add_trace(go.Scatter(mode="lines", line=dict(color=EDGE, width=1), hoverinfo="skip",
                                 name="edges", showlegend=False), 1, 1)
        for b in range(WIDTH_BINS):
            fig.add_trace(go.Scatter(mode="lines", line=dict(color=FIELD, width=1.5 + 2.5 * b),
                                     hoverinfo="skip", name="messages", showlegend=False), 1, 1)
        graph_end = fig.layout.xaxis.domain[1]
        fig.add_trace(go.Scatter(mode="markers", name="nodes", showlegend=False, hoverinfo="text",
                                 marker=dict(
            colorscale="RdBu_r", colorbar=dict(title=dict(text="state", side="top"), x=graph_end + 0.01,
                                               xanchor="left", len=0.85, thickness=10))), 1, 1)
        for m in MODELS:
            fig.add_trace(go.Scatter(mode="lines+markers", name=m, line=dict(color=MODEL_COLORS[m])), 1, 2)
        fig.add_trace(go.Scatter(mode="markers", name="this round", marker=dict(
            size=14, symbol="circle-open", color=CHOSEN, line=dict(width=2))), 1, 2)
        fig.update_annotations(font_size=14)  # the subplot titles
        fig.add_annotation(text=KEY_HTML, xref="paper", yref="paper", x=0, y=-0.03, xanchor="left",
                           yanchor="top", showarrow=False, align="left", font=dict(size=11))
        fig.update_layout(template="plotly_white", height=480, autosize=True,
                          margin=dict(l=10, r=10, t=40, b=60),
                          legend=dict(x=1, y=1, xanchor="right", yanchor="top",
                                      bgcolor="rgba(255,255,255,0.8)"))
        fig.update_xaxes(visible=False, range=[-1.12, 1.12], row=1, col=1)
        fig.update_yaxes(visible=False, range=[-1.12, 1.12], row=1, col=1)
        fig.update_xaxes(title_text="round (depth)", dtick=1, range=[-0.4, MAX_DEPTH + 0.4], row=1, col=2)
        fig.update_yaxes(type="log", dtick=1, row=1, col=2)  # a label per power of ten
        widget = go.FigureWidget(fig)
        widget._config = {**widget._config, "responsive": True}  # follow the notebook's width
        return widget

    def update(self, change=None):
        if self._busy:  # the round's range moving with the depth: one redraw, not two
            return
        self._busy = True
        try:
            self.round.max = self.depth.value
        finally:
            self._busy = False
        graph, pos, p, hops, curves = self.state()
        r, node = self.round.value, self.node.value
        update_traces(self.figure, panel_traces(graph, pos, p, hops, curves, self.model.value, r, node))
        text = summary(graph, self.model.value, self.depth.value, r, node, hops, curves)
        self.summary.value = f"<b>{text}</b>"

    def snapshot(self):
        """The two panels as a static matplotlib figure."""
        import matplotlib.pyplot as plt
        from matplotlib.collections import LineCollection

        graph, pos, p, hops, curves = self.state()
        r, node = self.round.value, self.node.value
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), width_ratios=[0.6, 0.4], layout="constrained")
        plain = ~p.looped.self_loops()
        segments = torch.stack([pos[p.looped.source], pos[p.looped.destination]], 1).numpy()
        axes[0].add_collection(LineCollection(segments[plain.numpy()], colors=EDGE, linewidths=0.8))
        active = message_edges(p, hops, r) & plain
        level = width_levels(p.weights[r - 1] if r else torch.zeros(len(active)), active)
        if active.any():
            axes[0].add_collection(LineCollection(segments[active.numpy()], colors=FIELD,
                                                  linewidths=(1 + 1.5 * level[active]).numpy(),
                                                  label="messages into the receptive field"))
        scale = float(colours(graph, graph.x).abs().max())
        field = (hops >= 0).tolist()
        points = axes[0].scatter(pos[:, 0], pos[:, 1], c=colours(graph, p.states[r]), cmap="RdBu_r",
                                 vmin=-scale, vmax=scale, s=60, zorder=3, linewidths=1.5,
                                 edgecolors=[FIELD if f else "white" for f in field])
        axes[0].scatter(pos[node, 0], pos[node, 1], marker="*", s=260, c=[colours(graph, p.states[r])[node]],
                        cmap="RdBu_r", vmin=-scale, vmax=scale, edgecolors=CHOSEN, zorder=4)
        fig.colorbar(points, ax=axes[0], label="state", fraction=0.04)
        axes[0].set(title="node states and messages", xticks=[], yticks=[], xlim=(-1.1, 1.1),
                    ylim=(-1.1, 1.1))
        axes[0].set_xlabel("\n".join(KEY), fontsize=8)
        for m in MODELS:
            axes[1].semilogy(range(len(curves[m])), curves[m], "o-", color=MODEL_COLORS[m], label=m, ms=3)
        axes[1].scatter([r], [curves[self.model.value][r]], s=90, facecolors="none", edgecolors=CHOSEN,
                        zorder=3, label="this round")
        axes[1].set(title="Dirichlet energy / input's", xlabel="round (depth)")
        axes[1].legend(fontsize=8)
        fig.supxlabel(summary(graph, self.model.value, self.depth.value, r, node, hops, curves), fontsize=9)
        return fig


def gallery() -> MessagePassingWidget:
    """The widget on ready data, for the browser gallery: GAT, depth 3, node 0, homophily 0.8."""
    return MessagePassingWidget(model="GAT", depth=3, node=0, homophily=0.8)
