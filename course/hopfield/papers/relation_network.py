"""Relation Networks: a pairwise MLP summed over all object pairs answers relational questions.

Santoro et al. 2017, "A simple neural network module for relational reasoning" (arXiv:1706.01427),
eq. (1) and (2) of section 2:

    RN(O) = f_phi( sum_{i, j} g_theta(o_i, o_j, q) )

g_theta (the "relation" MLP) sees every ordered pair of objects (i = j included) with the question q;
the sum makes the module invariant to the order of the objects; f_phi reads the answer out of it.

The toy is `sort_of_clevr_toy` (objects as vectors, section 5.2's question kinds). The baseline the
paper's point needs is the same answer read-out without the pairwise structure: an MLP on the
concatenated objects and question (the paper's CNN+MLP, section 5.2), widened until it has at least
the RN's parameter count. The claim (a reproduction, 3 seeds): both answer the non-relational
questions; on the relational ones the RN is far ahead.
"""
import functools

import torch
import torch.nn.functional as F
from torch import nn

from course.checks import check_int, check_tensor
from course.claims import REPRODUCTION, Claim
from course.hopfield.papers import sort_of_clevr_toy as toy
from course.metrics import parameter_count
from course.train import DecayingAdam, fit, seeded

HIDDEN, STEPS, BATCH, LR = 32, 600, 64, 1e-2
N_TRAIN, N_TEST, HELD_OUT = 20000, 3000, 1000


def check_scene(where: str, objects, question, object_dim: int, question_dim: int):
    """objects [B, N, D_o] and question [B, D_q], floats, with the model's D_o and D_q."""
    check_tensor(where, "objects", objects, ndim=3, kind="float")
    check_tensor(where, "question", question, ndim=2, kind="float")
    if objects.shape[-1] != object_dim:
        raise ValueError(f"{where}: `objects` must be [B, N, D_o] with D_o = {object_dim}; got shape "
                         f"{tuple(objects.shape)}.")
    if question.shape != (objects.shape[0], question_dim):
        raise ValueError(f"{where}: `question` must have one row per scene, [B, D_q] = "
                         f"{(objects.shape[0], question_dim)}; got shape {tuple(question.shape)}.")


def object_pairs(objects: torch.Tensor, question: torch.Tensor) -> torch.Tensor:
    """Every ordered pair (o_i, o_j, q) of eq. (1): objects [B, N, D_o], question [B, D_q]
    -> [B, N, N, 2 D_o + D_q], entry [b, i, j] = cat(o_i, o_j, q)."""
    B, N, D = objects.shape
    o_i = objects[:, :, None].expand(B, N, N, D)
    o_j = objects[:, None, :].expand(B, N, N, D)
    q = question[:, None, None].expand(B, N, N, question.shape[-1])
    return torch.cat([o_i, o_j, q], dim=-1)


def mlp(sizes) -> nn.Sequential:
    """Linear layers of `sizes` with ReLU between them (none after the last)."""
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class RelationNetwork(nn.Module):
    """RN(O) = f_phi(sum_{i,j} g_theta(o_i, o_j, q)) (arXiv:1706.01427, eq. 2).
    objects [B, N, D_o], question [B, D_q] -> logits [B, A].

    g_theta's first layer is linear in cat(o_i, o_j, q), so it is computed as W_i o_i + W_j o_j + W_q q
    + b: per object, then broadcast over the N^2 pairs (the same numbers as on `object_pairs`, N times
    fewer multiplications)."""

    def __init__(self, object_dim: int, question_dim: int, answers: int, hidden: int = HIDDEN):
        super().__init__()
        self.object_dim, self.question_dim = object_dim, question_dim
        self.g_theta = nn.Sequential(mlp([2 * object_dim + question_dim, hidden, hidden, hidden]), nn.ReLU())
        self.f_phi = mlp([hidden, hidden, answers])

    def relations(self, objects, question):
        """g_theta of every pair: [B, N, N, H], entry [b, i, j] = g_theta(o_i, o_j, q)."""
        first, rest = self.g_theta[0][0], nn.Sequential(*self.g_theta[0][1:], self.g_theta[1])
        D = self.object_dim
        w_i, w_j, w_q = first.weight[:, :D], first.weight[:, D:2 * D], first.weight[:, 2 * D:]
        a_i = objects @ w_i.T  # [B, N, H]
        a_j = objects @ w_j.T + (question @ w_q.T + first.bias)[:, None]  # [B, N, H]
        return rest(a_i[:, :, None] + a_j[:, None, :])

    def forward(self, objects, question):
        check_scene("RelationNetwork", objects, question, self.object_dim, self.question_dim)
        return self.f_phi(self.relations(objects, question).sum(dim=(1, 2)))


class ObjectMLP(nn.Module):
    """The baseline: an MLP on cat(o_1, ..., o_N, q). objects [B, N, D_o], question [B, D_q] -> [B, A]."""

    def __init__(self, objects: int, object_dim: int, question_dim: int, answers: int, width: int):
        super().__init__()
        self.net = mlp([objects * object_dim + question_dim, width, width, width, answers])
        self.objects, self.object_dim, self.question_dim = objects, object_dim, question_dim

    def forward(self, objects, question):
        check_scene("ObjectMLP", objects, question, self.object_dim, self.question_dim)
        if objects.shape[1] != self.objects:
            raise ValueError(f"ObjectMLP: `objects` must hold N = {self.objects} objects; got shape "
                             f"{tuple(objects.shape)}.")
        return self.net(torch.cat([objects.flatten(1), question], dim=-1))


def build(relational: bool, seed: int) -> nn.Module:
    """The RN at HIDDEN, or the MLP at the smallest width with at least the RN's parameter count,
    each built under the seed."""
    sizes = (toy.OBJECT_DIM, toy.QUESTION_DIM, len(toy.ANSWERS))
    with seeded(seed):
        rn = RelationNetwork(*sizes)
    if relational:
        return rn
    width = HIDDEN
    while parameter_count(ObjectMLP(toy.OBJECTS, *sizes, width)) < parameter_count(rn):
        width += 1
    with seeded(seed):
        return ObjectMLP(toy.OBJECTS, *sizes, width)


def train(model: nn.Module, data: toy.Questions, seed: int, steps: int = STEPS) -> nn.Module:
    """Adam (learning rate falling to 0) on mini-batches of BATCH questions drawn from `data`."""
    check_int("relation_network.train", "steps", steps, low=1)
    g = torch.Generator().manual_seed(seed)

    def loss():
        part = data.batch(torch.randint(len(data), (BATCH,), generator=g))
        return F.cross_entropy(model(part.objects, part.questions), part.answers)

    fit(model.parameters(), loss, steps, LR, seed=seed, optimizer=DecayingAdam, total=steps)
    return model


def accuracies(model: nn.Module, data: toy.Questions) -> dict:
    """Accuracy on the relational and on the non-relational questions of `data`."""
    with torch.no_grad():
        right = model(data.objects, data.questions).argmax(-1) == data.answers
    rel = data.relational
    out = {"relational": right[rel].float().mean().item(), "nonrelational": right[~rel].float().mean().item()}
    out.update({kind: right[data.kinds == k].float().mean().item() for k, kind in enumerate(toy.KINDS)})
    return out


@functools.lru_cache(maxsize=6)
def trained(relational: bool, seed: int) -> nn.Module:
    """The RN (relational=True) or the matched MLP, trained on the seed's N_TRAIN questions (cached)."""
    return train(build(relational, seed), toy.dataset(N_TRAIN, seed), seed)


def relation_experiment(seed: int) -> dict:
    """Held-out accuracy of the RN and the matched MLP on relational and non-relational questions."""
    check_int("relation_experiment", "seed", seed, low=0)
    test = toy.dataset(N_TEST, seed + HELD_OUT)
    out = {}
    for name, relational in (("rn", True), ("mlp", False)):
        model = trained(relational, seed)
        acc = accuracies(model, test)
        out.update({f"{name}_{key}": value for key, value in acc.items()})
        out[f"{name}_parameters"] = float(parameter_count(model))
    out["relational_gap"] = out["rn_relational"] - out["mlp_relational"]
    return out


CLAIM = Claim(
    paper="Santoro et al. 2017 (Relation Networks)",
    citation="A simple neural network module for relational reasoning (arXiv:1706.01427), eq. (2), "
             "section 5.2 and Table 1 (Sort-of-CLEVR: CNN+RN against CNN+MLP)",
    statement="a Relation Network answers relational questions where an MLP of the same size fails, "
              "while both answer the non-relational ones",
    kind=REPRODUCTION,
    experiment=relation_experiment,
    thresholds=("rn_relational >= 0.8", "relational_gap >= 0.15", "rn_nonrelational >= 0.9",
                "mlp_nonrelational >= 0.9"),
    summary=lambda m: (f"relational accuracy {m['rn_relational']:.2f} RN against {m['mlp_relational']:.2f} "
                       f"MLP; non-relational {m['rn_nonrelational']:.2f} and {m['mlp_nonrelational']:.2f} "
                       f"(closest {m['rn_closest']:.2f} and {m['mlp_closest']:.2f}, counting "
                       f"{m['rn_same_shape']:.2f} and {m['mlp_same_shape']:.2f}; "
                       f"{m['rn_parameters']:.0f} and {m['mlp_parameters']:.0f} parameters)"),
    held_on=(),
    note=f"Not reproduced at this toy's budget ({toy.OBJECTS} objects given as vectors, no CNN; {STEPS} "
         f"Adam steps of {BATCH} questions). The RN answers the non-relational questions (0.94-0.99) and "
         "mostly the counting one (0.86-1.00), but on 'closest' it stays at chance (0.33-0.36 for 1/3), "
         "like the MLP, so its relational accuracy (0.61-0.67) misses 0.8 and the gap (0.02-0.07) misses "
         "0.15. The matched MLP, on the shuffled objects, does not learn to find the object of a colour "
         "(non-relational 0.67-0.71). Trained 4000 steps (seed 0, outside the budget), the RN still "
         "reached only 0.38 on 'closest' and the MLP 0.71 on the non-relational questions: the paper "
         "trains far longer. Per-kind accuracies are among the measured numbers (rn_closest, ...).",
)
