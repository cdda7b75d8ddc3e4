"""The Deep Mixture of Experts of Eigen, Ranzato and Sutskever 2013, "Learning Factored
Representations in a Deep Mixture of Experts", on generated glyph images.

Section 3 of the paper stacks two gated mixtures and puts a softmax classifier on top:

    z1 = sum_i g1_i(x)  f1_i(x)        layer 1: E1 experts and a gating network on the input
    z2 = sum_j g2_j(z1) f2_j(z1)       layer 2: E2 experts and a gating network on z1
    y  = softmax(z2 W_out)

with experts f(x) = ReLU(x W + b) and linear gates g(x) = softmax(x W_g + b_g) (the paper also tries
one-hidden-layer gates), all dense: every expert runs, and one network expresses E1 x E2
combinations of experts. On randomly
translated MNIST the paper finds layer-1 experts that depend on where the digit is and layer-2
experts that depend on which digit it is (section 4.1). Here the same model is trained on glyphs:
4 glyph shapes ("what") at 4 places on an 8x8 canvas ("where"), drawn independently, plus noise.
Which factor a layer's gating follows is measured as the normalised mutual information between its
most-weighted expert and each factor.

Like the paper (which constrains the experts' cumulative assignment during training, section 3), the
training adds a term against the gating collapsing onto one expert: here Shazeer et al.'s importance
loss, the squared coefficient of variation of the batch's summed gates, for each layer.
"""
import math

import torch
from einops import einsum, rearrange
from torch import nn

from course.checks import check_int, check_tensor
from course.claims import Claim, one_thread, timed
from course.moe.balance import cv_squared

CANVAS = 8
GLYPH = 4
GLYPHS = torch.tensor([
    [[1, 0, 0, 1], [0, 1, 1, 0], [0, 1, 1, 0], [1, 0, 0, 1]],  # X
    [[1, 1, 1, 1], [1, 0, 0, 1], [1, 0, 0, 1], [1, 1, 1, 1]],  # O
    [[0, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1], [0, 1, 1, 0]],  # disc
    [[1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]],  # L
], dtype=torch.float32)  # [classes, 4, 4]
PLACES = ((0, 0), (0, 4), (4, 0), (4, 4))  # top-left corner of each glyph position (row, column)


def glyph_images(n: int, noise: float = 0.3, seed: int = 0):
    """n glyph images: a class ("what") and a place ("where") drawn independently and uniformly.

    -> images [n, 8, 8], what [n], where [n].
    """
    check_int("moe.glyph_images", "n", n, low=0)
    g = torch.Generator().manual_seed(seed)
    what = torch.randint(len(GLYPHS), (n,), generator=g)
    where = torch.randint(len(PLACES), (n,), generator=g)
    images = noise * torch.randn(n, CANVAS, CANVAS, generator=g)
    for p, (row, col) in enumerate(PLACES):
        here = where == p
        images[here, row:row + GLYPH, col:col + GLYPH] += GLYPHS[what[here]]
    return images, what, where


class GatedMixture(nn.Module):
    """One layer of the deep MoE: z = sum_i g_i(x) f_i(x), ReLU experts, softmax gate (all dense)."""

    def __init__(self, d_in: int, d_out: int, num_experts: int):
        super().__init__()
        self.w = nn.Parameter(torch.randn(num_experts, d_in, d_out) / math.sqrt(d_in))
        self.b = nn.Parameter(torch.zeros(num_experts, d_out))
        self.gate = nn.Linear(d_in, num_experts)

    def forward(self, x):
        """x [B, D_in] -> z [B, D_out], gates [B, E]."""
        gates = self.gate(x).softmax(-1)  # [B, E]
        experts = torch.relu(einsum(x, self.w, "B D, E D H -> B E H") + self.b)  # [B, E, H]
        return einsum(gates, experts, "B E, B E H -> B H"), gates


class DeepMoE(nn.Module):
    """Two stacked gated mixtures and a linear softmax classifier (Eigen et al. 2013, section 3)."""

    def __init__(self, d_in: int, num_classes: int, experts: tuple[int, int] = (4, 4),
                 hidden: tuple[int, int] = (8, 16)):
        super().__init__()
        self.layer1 = GatedMixture(d_in, hidden[0], experts[0])
        self.layer2 = GatedMixture(hidden[0], hidden[1], experts[1])
        self.out = nn.Linear(hidden[1], num_classes)

    def forward(self, x):
        """x [B, D] -> class logits [B, C], gates of layer 1 [B, E1] and of layer 2 [B, E2]."""
        z1, g1 = self.layer1(x)
        z2, g2 = self.layer2(z1)
        return self.out(z2), g1, g2


def train_deep_moe(images, labels, steps: int = 300, lr: float = 0.03, w_importance: float = 0.1,
                   seed: int = 0) -> DeepMoE:
    """Full-batch Adam on cross-entropy + w_importance * CV(sum of gates)^2 per layer.

    images [B, H, W], labels [B] -> the trained model.
    """
    check_tensor("moe.train_deep_moe", "images", images, ndim=3, kind="float")
    check_tensor("moe.train_deep_moe", "labels", labels, ndim=1, kind="int")
    torch.manual_seed(seed)
    x = rearrange(images, "B H W -> B (H W)")
    model = DeepMoE(x.shape[1], int(labels.max()) + 1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        logits, g1, g2 = model(x)
        loss = nn.functional.cross_entropy(logits, labels)
        loss = loss + w_importance * (cv_squared(g1.sum(0)) + cv_squared(g2.sum(0)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def entropy(labels) -> float:
    """Shannon entropy (nats) of the empirical distribution of integer labels [N]."""
    p = torch.bincount(labels).float()
    p = p[p > 0] / labels.numel()
    return -(p * p.log()).sum().item()


def normalized_mutual_information(a, b) -> float:
    """NMI(a, b) = I(a; b) / mean(H(a), H(b)) of two labelings [N] (1 when they match up to renaming).

    The arithmetic-mean normalisation is scikit-learn's default; two constant labelings score 1.
    """
    check_tensor("moe.normalized_mutual_information", "a", a, ndim=1, kind="int")
    check_tensor("moe.normalized_mutual_information", "b", b, ndim=1, kind="int")
    if a.shape != b.shape:
        raise ValueError(f"moe.normalized_mutual_information: `a` and `b` must have one shape; "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}.")
    h_a, h_b = entropy(a), entropy(b)
    if h_a == 0 and h_b == 0:
        return 1.0
    joint = a.long() * (int(b.max()) + 1) + b.long()  # one label per (a, b) pair
    mutual = h_a + h_b - entropy(joint)
    return max(0.0, mutual / ((h_a + h_b) / 2))


def deep_moe_claim(n_train: int = 1024, n_test: int = 1024, seed: int = 0,
                   margins: tuple[float, float] = (0.1, 0.3)) -> Claim:
    """Eigen et al. 2013, section 4.1: layer-1 gating follows "where", layer-2 gating "what".

    `margins`: by how much NMI(layer 1, where) must exceed NMI(layer 1, what), and NMI(layer 2, what)
    exceed NMI(layer 2, where), for the claim to hold.
    """
    with timed() as t, one_thread():
        images, what, where = glyph_images(n_train, seed=seed)
        model = train_deep_moe(images, what, seed=seed)
        test_images, test_what, test_where = glyph_images(n_test, seed=seed + 1)
        with torch.no_grad():
            logits, g1, g2 = model(rearrange(test_images, "B H W -> B (H W)"))
    e1, e2 = g1.argmax(-1), g2.argmax(-1)
    m = {"nmi_layer1_where": normalized_mutual_information(e1, test_where),
         "nmi_layer1_what": normalized_mutual_information(e1, test_what),
         "nmi_layer2_where": normalized_mutual_information(e2, test_where),
         "nmi_layer2_what": normalized_mutual_information(e2, test_what),
         "test_accuracy": (logits.argmax(-1) == test_what).float().mean().item()}
    holds = (m["nmi_layer1_where"] > m["nmi_layer1_what"] + margins[0]
             and m["nmi_layer2_what"] > m["nmi_layer2_where"] + margins[1])
    summary = (f"NMI of the most-weighted expert with (where, what): layer 1 "
               f"({m['nmi_layer1_where']:.2f}, {m['nmi_layer1_what']:.2f}), layer 2 "
               f"({m['nmi_layer2_where']:.2f}, {m['nmi_layer2_what']:.2f}); "
               f"test accuracy {m['test_accuracy']:.1%}")
    return Claim(paper="Eigen, Ranzato, Sutskever 2013, Learning Factored Representations in a Deep "
                       "Mixture of Experts (sec. 4.1)",
                 statement='a two-layer deep MoE learns location-dependent ("where") experts in its '
                           'first layer and class-specific ("what") experts in its second',
                 summary=summary, holds=holds, measured=m, seconds=t.seconds)
