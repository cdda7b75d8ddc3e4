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

from course.checks import check_tensor
from course.claims import REPRODUCTION, Claim
from course.data import glyph_images
from course.metrics import accuracy, normalized_mutual_information
from course.moe.losses import importance_loss
from course.train import fit, seeded


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
    x = rearrange(images, "B H W -> B (H W)")
    with seeded(seed):
        model = DeepMoE(x.shape[1], int(labels.max()) + 1)

    def loss():
        logits, g1, g2 = model(x)
        balance = importance_loss(g1) + importance_loss(g2)
        return nn.functional.cross_entropy(logits, labels) + w_importance * balance

    fit(model.parameters(), loss, steps, lr, seed=seed, desc="deep MoE")
    return model


def deep_moe_experiment(seed: int, n_train: int = 1024, n_test: int = 1024) -> dict:
    """NMI of each layer's most-weighted expert with "where" and with "what", on fresh test images."""
    images, what, _ = glyph_images(n_train, seed=seed)
    model = train_deep_moe(images, what, seed=seed)
    test_images, test_what, test_where = glyph_images(n_test, seed=seed + 1)
    with torch.no_grad():
        logits, g1, g2 = model(rearrange(test_images, "B H W -> B (H W)"))
    e1, e2 = g1.argmax(-1), g2.argmax(-1)
    m = {"nmi_layer1_where": normalized_mutual_information(e1, test_where),
         "nmi_layer1_what": normalized_mutual_information(e1, test_what),
         "nmi_layer2_where": normalized_mutual_information(e2, test_where),
         "nmi_layer2_what": normalized_mutual_information(e2, test_what),
         "test_accuracy": accuracy(logits, test_what)}
    m["layer1_where_margin"] = m["nmi_layer1_where"] - m["nmi_layer1_what"]
    m["layer2_what_margin"] = m["nmi_layer2_what"] - m["nmi_layer2_where"]
    return m


CLAIM = Claim(
    paper="Eigen, Ranzato, Sutskever 2013",
    citation="Learning Factored Representations in a Deep Mixture of Experts (arXiv:1312.4314), "
             "section 4.1",
    statement='a two-layer deep MoE learns location-dependent ("where") experts in its first layer '
              'and class-specific ("what") experts in its second',
    kind=REPRODUCTION,
    experiment=deep_moe_experiment,
    thresholds=("layer1_where_margin >= 0.1", "layer2_what_margin >= 0.3", "test_accuracy >= 0.9"),
    summary=lambda m: (
        f"NMI of the most-weighted expert with (where, what): layer 1 ({m['nmi_layer1_where']:.2f}, "
        f"{m['nmi_layer1_what']:.2f}), layer 2 ({m['nmi_layer2_where']:.2f}, "
        f"{m['nmi_layer2_what']:.2f}); test accuracy {m['test_accuracy']:.1%}"),
)
