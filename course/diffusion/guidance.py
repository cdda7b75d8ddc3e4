"""Classifier-free guidance with denoisers known in closed form.

Ho and Salimans 2022, "Classifier-Free Diffusion Guidance" (arXiv:2207.12598), eq. 6, written for
denoisers: D_w(x; sigma, c) = D(x; sigma) + w (D(x; sigma, c) - D(x; sigma)), the unconditional
prediction pushed towards (w > 1: past) the conditional one; w = 1 is the conditional model, w = 0
the unconditional. With a mixture whose components carry labels, both denoisers are exact: the
conditional one is the mixture of the class's components.
"""
from dataclasses import dataclass

import torch

from course.checks import check_tensor
from course.diffusion.mixtures import GaussianMixture


@dataclass(frozen=True)
class LabelledMixture:
    """A mixture whose component k belongs to class labels[k]. labels [K] int"""

    mixture: GaussianMixture
    labels: torch.Tensor

    def __post_init__(self):
        check_tensor("LabelledMixture", "labels", self.labels, ndim=1, kind="int")
        if self.labels.shape[0] != self.mixture.means.shape[0]:
            raise ValueError(f"LabelledMixture: `labels` must give one class per component, K = "
                             f"{self.mixture.means.shape[0]}; got {self.labels.shape[0]}.")

    @property
    def classes(self) -> int:
        return int(self.labels.max()) + 1

    def of_class(self, c: int) -> GaussianMixture:
        keep = self.labels == c
        if not keep.any():
            raise ValueError(f"LabelledMixture.of_class: no component has class {c}; classes are 0 to "
                             f"{self.classes - 1}.")
        m = self.mixture
        return GaussianMixture(m.means[keep], m.stds[keep], m.weights[keep])


def guided_denoiser(labelled: LabelledMixture, c: int, w: float):
    """D_w(x; sigma) = D(x; sigma) + w (D(x; sigma, c) - D(x; sigma)) (eq. 6), as a denoiser (x, sigma)."""
    if not w >= 0:
        raise ValueError(f"guidance.guided_denoiser: the guidance scale `w` must be >= 0; got {w}.")
    unconditional, conditional = labelled.mixture, labelled.of_class(c)

    def denoise(x, sigma):
        d_u = unconditional.denoise(x, sigma)
        return d_u + w * (conditional.denoise(x, sigma) - d_u)

    return denoise
