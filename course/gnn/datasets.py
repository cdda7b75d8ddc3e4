"""Offline graphs for the graph families: a vendored classic, generators with a known answer, and the
benchmarks' power-law graphs. Nothing is downloaded; every generator takes a seed.

- `karate_club`: Zachary 1977, "An Information Flow Model for Conflict and Fission in Small Groups",
  Journal of Anthropological Research 33(4), 452-473: 34 members, 78 friendships, and the club each
  member joined after the split (Mr. Hi's, or the officers'). Edges as in the UCINET data file
  (the one networkx's `karate_club_graph` reads).
- `csbm`: contextual stochastic block models (Deshpande et al. 2018, "Contextual Stochastic Block
  Models"): a class per node, edges that stay inside a class with probability `homophily`, and
  features = signal * class mean + Gaussian noise.
- `power_law`: Chung-Lu graphs (Chung and Lu 2002) with degrees ~ rank^(-1/(gamma-1)), hubs capped at
  `max_degree`: the degree skew that breaks naive kernels.
- `shortest_path_graphs`, `bfs_graphs`, `sorting_graphs`: the algorithmic tasks (Battaglia et al.
  2018's shortest-path demo; the CLRS benchmark's BFS and sorting, Velickovic et al. 2022).
"""
import math

import torch

from course.checks import check_int
from course.gnn.graph import Graph, batch, coalesce, undirected

KARATE_EDGES = (
    (0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (0, 6), (0, 7), (0, 8), (0, 10), (0, 11), (0, 12), (0, 13),
    (0, 17), (0, 19), (0, 21), (0, 31), (1, 2), (1, 3), (1, 7), (1, 13), (1, 17), (1, 19), (1, 21),
    (1, 30), (2, 3), (2, 7), (2, 8), (2, 9), (2, 13), (2, 27), (2, 28), (2, 32), (3, 7), (3, 12), (3, 13),
    (4, 6), (4, 10), (5, 6), (5, 10), (5, 16), (6, 16), (8, 30), (8, 32), (8, 33), (9, 33), (13, 33),
    (14, 32), (14, 33), (15, 32), (15, 33), (18, 32), (18, 33), (19, 33), (20, 32), (20, 33), (22, 32),
    (22, 33), (23, 25), (23, 27), (23, 29), (23, 32), (23, 33), (24, 25), (24, 27), (24, 31), (25, 31),
    (26, 29), (26, 33), (27, 33), (28, 31), (28, 33), (29, 32), (29, 33), (30, 32), (30, 33), (31, 32),
    (31, 33), (32, 33),
)
MR_HI = (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 16, 17, 19, 21)  # the instructor's faction
INSTRUCTOR, PRESIDENT = 0, 33


def karate_club() -> Graph:
    """Zachary's karate club: 34 nodes, 156 directed edges (78 friendships), y = 0 for Mr. Hi's club,
    1 for the officers'; x = the identity (one-hot node ids, as in Kipf and Welling's demo)."""
    y = torch.ones(34, dtype=torch.long)
    y[list(MR_HI)] = 0
    return Graph(undirected(KARATE_EDGES, 34), 34, x=torch.eye(34), y=y)


def _pairs_to_graph(a: torch.Tensor, b: torch.Tensor, num_nodes: int, **fields) -> Graph:
    """Undirected simple graph from candidate pairs: self-pairs dropped, repeats kept once."""
    keep = a != b
    lo, hi = torch.minimum(a, b)[keep], torch.maximum(a, b)[keep]
    pairs = torch.stack([lo, hi])
    g = coalesce(Graph(pairs, num_nodes))
    return Graph(undirected(g.edge_index, num_nodes), num_nodes, **fields)


def csbm(num_nodes: int = 200, num_classes: int = 2, homophily: float = 0.8, degree: float = 6.0,
         features: int = 16, signal: float = 1.0, seed: int = 0) -> Graph:
    """A contextual SBM: classes of equal size, about `degree` neighbours per node, a fraction
    `homophily` of the edges inside a class; x = signal * mu_y + N(0, I) / sqrt(F) with unit class
    means mu_c. -> Graph with x [N, F], y [N]."""
    where = "gnn.csbm"
    check_int(where, "num_nodes", num_nodes, low=1)
    check_int(where, "num_classes", num_classes, low=1, high=num_nodes)
    check_int(where, "features", features, low=1)
    if not 0 <= homophily <= 1:
        raise ValueError(f"{where}: `homophily` must be in [0, 1]; got {homophily}.")
    if not degree >= 0 or not math.isfinite(signal):
        raise ValueError(f"{where}: `degree` must be >= 0 and `signal` finite; got {degree}, {signal}.")
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(num_nodes) % num_classes
    y = y[torch.randperm(num_nodes, generator=g)]
    members = torch.argsort(y, stable=True)  # nodes grouped by class
    size = torch.bincount(y, minlength=num_classes)
    start = torch.cumsum(size, 0) - size
    m = int(round(num_nodes * degree / 2))
    a = torch.randint(num_nodes, (m,), generator=g)
    inside = torch.rand(m, generator=g) < homophily
    shift = torch.randint(1, max(num_classes, 2), (m,), generator=g)  # another class
    cls = torch.where(inside | (num_classes == 1), y[a], (y[a] + shift) % num_classes)
    b = members[start[cls] + (torch.rand(m, generator=g) * size[cls]).long().clamp(max=size[cls] - 1)]
    means = torch.randn(num_classes, features, generator=g)
    means = means / means.norm(dim=1, keepdim=True)
    x = signal * means[y] + torch.randn(num_nodes, features, generator=g) / math.sqrt(features)
    return _pairs_to_graph(a, b, num_nodes, x=x, y=y)


def edge_homophily(graph: Graph) -> float:
    """The fraction of edges whose endpoints share a label (Zhu et al. 2020's edge homophily)."""
    if graph.num_edges == 0:
        return float("nan")
    return (graph.y[graph.source] == graph.y[graph.destination]).float().mean().item()


def split_nodes(labels: torch.Tensor, per_class: int, seed: int = 0):
    """A semi-supervised split: `per_class` training nodes of every class, the rest for testing.
    -> train_mask, test_mask [N] (bool)."""
    g = torch.Generator().manual_seed(seed)
    train = torch.zeros(labels.shape[0], dtype=torch.bool)
    for c in labels.unique():
        nodes = (labels == c).nonzero().flatten()
        train[nodes[torch.randperm(len(nodes), generator=g)[:per_class]]] = True
    return train, ~train


def power_law(num_nodes: int, num_edges: int, gamma: float = 2.1, max_degree: int = 10_000,
              seed: int = 0) -> Graph:
    """A directed Chung-Lu graph: expected in-degrees ~ rank^(-1/(gamma - 1)), capped at `max_degree`
    (the hubs), sources uniform. Duplicate edges are possible, as in real edge lists. -> Graph."""
    where = "gnn.power_law"
    check_int(where, "num_nodes", num_nodes, low=1)
    check_int(where, "num_edges", num_edges, low=0)
    if not gamma > 1:
        raise ValueError(f"{where}: `gamma` must be > 1; got {gamma}.")
    g = torch.Generator().manual_seed(seed)
    weight = torch.arange(1, num_nodes + 1, dtype=torch.float64) ** (-1 / (gamma - 1))
    expected = weight * num_edges / weight.sum()
    for _ in range(20):  # cap the hubs, give their excess to the others
        capped = expected.clamp(max=max_degree)
        free = capped < max_degree
        if not free.any() or abs(capped.sum() - num_edges) < 1:
            break
        expected = torch.where(free, capped * (num_edges - capped[~free].sum()) / capped[free].sum(), capped)
    destination = torch.multinomial(expected.float(), num_edges, replacement=True, generator=g) \
        if num_edges else torch.zeros(0, dtype=torch.long)
    relabel = torch.randperm(num_nodes, generator=g)  # hubs anywhere, not only the first ids
    source = torch.randint(num_nodes, (num_edges,), generator=g)
    return Graph(torch.stack([source, relabel[destination]]), num_nodes)


def random_connected(n: int, degree: float, g: torch.Generator) -> torch.Tensor:
    """A random spanning tree (each node joins an earlier one) plus random extra pairs, undirected.
    -> edge_index [2, E] of a connected simple graph on n nodes."""
    parents = (torch.rand(n - 1, generator=g) * torch.arange(1, n)).long()
    extra = max(int(round(n * (degree - 2) / 2)), 0)
    a = torch.cat([torch.arange(1, n), torch.randint(n, (extra,), generator=g)])
    b = torch.cat([parents, torch.randint(n, (extra,), generator=g)])
    return _pairs_to_graph(a, b, n).edge_index


def _sizes(where, num_graphs, min_nodes, max_nodes, g):
    check_int(where, "num_graphs", num_graphs, low=1)
    check_int(where, "min_nodes", min_nodes, low=2)
    check_int(where, "max_nodes", max_nodes, low=min_nodes)
    return torch.randint(min_nodes, max_nodes + 1, (num_graphs,), generator=g).tolist()


def bellman_ford(edge_index: torch.Tensor, weight: torch.Tensor, num_nodes: int, source: int):
    """Shortest distances from `source` [N] and each node's predecessor on a shortest path [N]
    (the source's is itself; unreachable nodes: inf and -1)."""
    dist = torch.full((num_nodes,), math.inf, dtype=torch.float64)
    dist[source] = 0
    pred = torch.full((num_nodes,), -1, dtype=torch.long)
    pred[source] = source
    src, dst = edge_index
    for _ in range(num_nodes - 1):
        candidate = dist[src] + weight.double()
        best = torch.full_like(dist, math.inf).scatter_reduce(0, dst, candidate, "amin")
        better = best < dist - 1e-12
        if not better.any():
            break
        # the predecessor: the first edge (in edge order) that attains the new distance
        hit = better[dst] & (candidate <= best[dst] + 1e-12)
        first = torch.full((num_nodes,), len(dst), dtype=torch.long).scatter_reduce(
            0, dst[hit], torch.arange(len(dst))[hit], "amin")
        pred[better] = src[first[better]]
        dist = torch.where(better, best, dist)
    return dist, pred


def shortest_path_graphs(num_graphs: int, min_nodes: int = 8, max_nodes: int = 16, degree: float = 3.0,
                         seed: int = 0):
    """Battaglia et al. 2018's shortest-path task: random connected graphs with random positive edge
    weights, a start and an end node; label the nodes and edges on the shortest path between them.

    -> (graph, edge_on_path): graph.x [N, 2] = (is start, is end), graph.edge_attr [E, 1] = weight,
    graph.y [N] = 1 on the path (both ends included); edge_on_path [E] = 1 for the path's edges in
    either direction.
    """
    g = torch.Generator().manual_seed(seed)
    graphs, on_path_edges = [], []
    for n in _sizes("gnn.shortest_path_graphs", num_graphs, min_nodes, max_nodes, g):
        edge_index = random_connected(n, degree, g)
        half = torch.rand(edge_index.shape[1] // 2, generator=g) * 0.9 + 0.1
        weight = torch.cat([half, half])  # undirected(): the second half mirrors the first
        start, end = torch.randperm(n, generator=g)[:2].tolist()
        _, pred = bellman_ford(edge_index, weight, n, start)
        path, node = [end], end
        while node != start:
            node = int(pred[node])
            path.append(node)
        on_path = torch.zeros(n, dtype=torch.long)
        on_path[path] = 1
        steps = set(zip(path[1:], path[:-1]))
        edge_on = torch.tensor([(s, d) in steps or (d, s) in steps for s, d in edge_index.t().tolist()],
                               dtype=torch.long)
        x = torch.zeros(n, 2)
        x[start, 0] = x[end, 1] = 1
        graphs.append(Graph(edge_index, n, x=x, edge_attr=weight[:, None], y=on_path))
        on_path_edges.append(edge_on)
    return batch(graphs), torch.cat(on_path_edges)


def bfs_graphs(num_graphs: int, min_nodes: int = 8, max_nodes: int = 16, degree: float = 2.5,
               seed: int = 0):
    """CLRS's BFS as a sequence of states: from one source, a node is reached at step t+1 if it or a
    neighbour was reached at step t.

    -> (graph, states): graph.x [N, 1] = is source; states [T + 1, N] (0/1, float) with states[0] the
    source alone and T = the largest eccentricity of a source in the batch (later steps repeat).
    """
    g = torch.Generator().manual_seed(seed)
    graphs = []
    for n in _sizes("gnn.bfs_graphs", num_graphs, min_nodes, max_nodes, g):
        edge_index = random_connected(n, degree, g)
        x = torch.zeros(n, 1)
        x[int(torch.randint(n, (1,), generator=g)), 0] = 1
        graphs.append(Graph(edge_index, n, x=x))
    graph = batch(graphs)
    states = [graph.x[:, 0]]
    while True:
        reached = states[-1].clone()
        reached.index_put_((graph.destination,), states[-1][graph.source], accumulate=True)
        reached = (reached > 0).float()
        if torch.equal(reached, states[-1]):
            break
        states.append(reached)
    return graph, torch.stack(states)


def sorting_graphs(num_graphs: int, min_nodes: int = 4, max_nodes: int = 8, seed: int = 0) -> Graph:
    """CLRS's sorting as a graph task: n keys as the nodes of a complete directed graph (no self-loops);
    the target of each node is its predecessor in sorted order (the smallest key points to itself).

    -> Graph with x [N, 1] keys in [0, 1), y [N] the predecessor's node id (in the batch's numbering).
    """
    g = torch.Generator().manual_seed(seed)
    graphs = []
    for n in _sizes("gnn.sorting_graphs", num_graphs, min_nodes, max_nodes, g):
        keys = torch.rand(n, generator=g)
        order = torch.argsort(keys)
        pred = torch.empty(n, dtype=torch.long)
        pred[order] = torch.cat([order[:1], order[:-1]])
        src, dst = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        off = src != dst
        graphs.append(Graph(torch.stack([src[off], dst[off]]), n, x=keys[:, None], y=pred))
    out = batch(graphs)
    sizes = torch.tensor([gr.num_nodes for gr in graphs])
    offsets = torch.repeat_interleave(torch.cumsum(sizes, 0) - sizes, sizes)
    return out.with_(y=out.y + offsets)
