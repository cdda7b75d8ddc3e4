"""Offline data for the course: generated on the spot, never downloaded.

Every generator takes a seed and returns tensors; the same seed gives the same data on every machine.
"""
import math

import torch

from course.checks import check_int

CANVAS = 8  # glyph images are CANVAS x CANVAS pixels
GLYPH = 4  # a glyph is GLYPH x GLYPH pixels
GLYPHS = torch.tensor([
    [[1, 0, 0, 1], [0, 1, 1, 0], [0, 1, 1, 0], [1, 0, 0, 1]],  # X
    [[1, 1, 1, 1], [1, 0, 0, 1], [1, 0, 0, 1], [1, 1, 1, 1]],  # O
    [[0, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1], [0, 1, 1, 0]],  # disc
    [[1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]],  # L
], dtype=torch.float32)  # [classes, 4, 4]
PLACES = ((0, 0), (0, 4), (4, 0), (4, 4))  # top-left corner of each glyph position (row, column)


def gaussian_mixture(n: int, centers, weights=None, std: float = 0.35, seed: int = 0):
    """n points in 2-D from Gaussian blobs around `centers` [E, 2] with mixing `weights` [E].

    Returns x [n, 2] and the blob of each point [n].
    """
    centers = torch.as_tensor(centers, dtype=torch.float32)
    if centers.dim() != 2 or centers.shape[1] != 2:
        raise ValueError(f"gaussian_mixture: `centers` must be of shape [E, 2]; got {tuple(centers.shape)}.")
    if n < 0:
        raise ValueError(f"gaussian_mixture: `n` must be >= 0; got {n}.")
    g = torch.Generator().manual_seed(seed)
    w = torch.ones(len(centers)) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    if w.shape != (len(centers),) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"gaussian_mixture: `weights` must be {len(centers)} non-negative numbers "
                         f"with a positive sum; got {w.tolist()}.")
    blob = torch.multinomial(w / w.sum(), n, replacement=True, generator=g)  # [n]
    x = centers[blob] + std * torch.randn(n, 2, generator=g)
    return x, blob


def ring_centers(E: int, radius: float = 2.0):
    """E points evenly spaced on a circle: centers for a mixture with one blob per expert. [E, 2]"""
    angle = torch.arange(E) * (2 * math.pi / E)
    return radius * torch.stack([angle.cos(), angle.sin()], dim=1)


def glyph_images(n: int, noise: float = 0.3, seed: int = 0):
    """n glyph images: a class ("what", one of GLYPHS) and a place ("where", one of PLACES) drawn
    independently and uniformly, plus Gaussian pixel noise.

    -> images [n, 8, 8], what [n], where [n].
    """
    check_int("data.glyph_images", "n", n, low=0)
    if not noise >= 0:
        raise ValueError(f"data.glyph_images: `noise` must be >= 0; got {noise}.")
    g = torch.Generator().manual_seed(seed)
    what = torch.randint(len(GLYPHS), (n,), generator=g)
    where = torch.randint(len(PLACES), (n,), generator=g)
    images = noise * torch.randn(n, CANVAS, CANVAS, generator=g)
    for p, (row, col) in enumerate(PLACES):
        here = where == p
        images[here, row:row + GLYPH, col:col + GLYPH] += GLYPHS[what[here]]
    return images, what, where
