"""Artificial Kuramoto Oscillatory Neurons (Miyato, Loewe, Geiger and Welling 2024, AKOrN,
arXiv:2410.13821): a neuron is an oscillator, a unit vector x_i on the sphere S^{N-1} of R^N, and a layer
runs the generalised Kuramoto dynamics of section 3,

    dx_i/dt = Omega_i x_i + Proj_{x_i}( c_i + sum_j J_ij x_j ),   Proj_x(y) = y - <y, x> x,

with Omega_i an antisymmetric N x N matrix (the natural frequency: a rotation, tangent to the sphere),
c_i the conditional stimulus from the layer below and J_ij the coupling (fully connected, convolutional
or attentive). The update is its Euler step followed by normalisation back onto the sphere:

    x_i <- ( x_i + gamma dx_i/dt ) / || x_i + gamma dx_i/dt ||.

With Omega = 0 and a symmetric J it lowers the energy E = -sum_i <c_i, x_i> - 1/2 sum_ij <x_i, J_ij x_j>
(for a small step gamma): coupled oscillators align, which is how AKOrN binds the features of an object.

The toy (the paper's unsupervised object discovery, section 5, at toy scale and without training): one
oscillator per pixel of a 16x16 scene holding a few glyphs (`course.data.GLYPHS`) that do not touch. The
coupling is a fixed local kernel gated by the image, J_ij = K(i - j) a_i a_j with K the 8 neighbours and a
the pixel's intensity (a fixed stand-in for the learned, input-dependent coupling), c = 0 (a stimulus
shared by all objects would pull them to one state) and one Omega for every pixel. From random states,
the oscillators of one glyph should synchronise and those of different glyphs should not: k-means on
the final states of the glyphs' pixels, against the glyph masks, scores a high NMI, and the same
dynamics with J = 0 (the oscillators only rotate) does not. No labels are used.

Shapes: states x [B, H, W, N]; stimulus c [B, H, W, N]; gates a [B, H, W]; kernel K [k, k] (k odd);
Omega [N, N]; masks [B, H, W] (0: background, 1..K: the glyphs).
"""
import functools

import torch
import torch.nn.functional as F

from course.checks import check_finite, check_int, check_tensor
from course.claims import REPRODUCTION, Claim
from course.data import GLYPH, GLYPHS
from course.metrics import kmeans
from course.metrics import normalized_mutual_information
from course.train import one_thread

SIZE, OBJECTS, SCENES = 16, 3, 8
N, STEPS, GAMMA, OMEGA_SCALE = 4, 60, 0.1, 1.0
RESTARTS = 5  # k-means restarts; the one of least inertia is kept


def tangent_projection(x, y):
    """Proj_x(y) = y - <y, x> x, the part of y tangent to the sphere at x (section 3).
    x, y [..., N] -> [..., N]"""
    return y - (y * x).sum(-1, keepdim=True) * x


def kuramoto_update(x, omega, drive, gamma: float = GAMMA):
    """One Euler step of the Kuramoto dynamics, then normalisation (AKOrN, section 3):
    x <- normalize(x + gamma (x Omega^T + Proj_x(drive))), drive = c + J x.
    x, drive [..., N]; omega [N, N] -> [..., N]"""
    where = "akorn.kuramoto_update"
    check_tensor(where, "x", x, kind="float")
    check_tensor(where, "drive", drive, kind="float")
    check_tensor(where, "omega", omega, ndim=2, kind="float")
    n = x.shape[-1]
    if n < 2 or drive.shape != x.shape or omega.shape != (n, n):
        raise ValueError(f"{where}: `x` [..., N] with N >= 2, `drive` of x's shape and `omega` [N, N] "
                         f"expected; got {tuple(x.shape)}, {tuple(drive.shape)} and {tuple(omega.shape)}.")
    if not torch.allclose(omega, -omega.T):
        raise ValueError(f"{where}: `omega` must be antisymmetric (a rotation generator); "
                         f"max |omega + omega^T| = {(omega + omega.T).abs().max().item():.3g}.")
    if not gamma > 0:
        raise ValueError(f"{where}: `gamma` must be > 0; got {gamma}.")
    velocity = x @ omega.T + tangent_projection(x, drive)
    return F.normalize(x + gamma * velocity, dim=-1)


def local_coupling(x, gates, kernel):
    """sum_j J_ij x_j with J_ij = K(i - j) a_i a_j: a depthwise conv of the gated states. x [B, H, W, N],
    gates a [B, H, W], kernel K [k, k] (k odd) -> [B, H, W, N]"""
    k, n = kernel.shape[0], x.shape[-1]
    gated = (gates[..., None] * x).permute(0, 3, 1, 2)  # [B, N, H, W]
    weight = kernel.to(x.dtype).expand(n, 1, k, k)
    return gates[..., None] * F.conv2d(gated, weight, padding=k // 2, groups=n).permute(0, 2, 3, 1)


def check_akorn_args(x, c, gates, kernel):
    where = "akorn.kuramoto"
    check_tensor(where, "x", x, ndim=4, kind="float")
    check_finite(where, "x", x)
    if x.shape[-1] < 2 or not torch.allclose(x.norm(dim=-1), torch.ones(()), atol=1e-4):
        raise ValueError(f"{where}: `x` [B, H, W, N] must hold unit vectors with N >= 2; got shape "
                         f"{tuple(x.shape)} with norms from {x.norm(dim=-1).min().item():.3g} to "
                         f"{x.norm(dim=-1).max().item():.3g}.")
    check_tensor(where, "c", c, ndim=4, kind="float")
    check_tensor(where, "gates", gates, ndim=3, kind="float")
    if c.shape != x.shape or gates.shape != x.shape[:3]:
        raise ValueError(f"{where}: `c` must be of x's shape {tuple(x.shape)} and `gates` [B, H, W] = "
                         f"{tuple(x.shape[:3])}; got {tuple(c.shape)} and {tuple(gates.shape)}.")
    check_tensor(where, "kernel", kernel, ndim=2, kind="float")
    if kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
        raise ValueError(f"{where}: `kernel` must be [k, k] with k odd; got {tuple(kernel.shape)}.")


def kuramoto(x, omega, c, gates, kernel, steps: int = STEPS, gamma: float = GAMMA):
    """`steps` Kuramoto updates with the gated local coupling, from the states x.
    -> final states [B, H, W, N]"""
    check_akorn_args(x, c, gates, kernel)
    check_int("akorn.kuramoto", "steps", steps, low=0)
    for _ in range(steps):
        x = kuramoto_update(x, omega, c + local_coupling(x, gates, kernel), gamma)
    return x


def energy(x, c, gates, kernel):
    """E = -sum_i <c_i, x_i> - 1/2 sum_ij <x_i, J_ij x_j> of each scene (section 3). -> [B]"""
    return -(c * x).sum((1, 2, 3)) - 0.5 * (x * local_coupling(x, gates, kernel)).sum((1, 2, 3))


def neighbour_kernel(radius: int = 1):
    """K = 1 on the (2 r + 1)^2 - 1 neighbours of a pixel, 0 on the pixel itself. -> [2 r + 1, 2 r + 1]"""
    kernel = torch.ones(2 * radius + 1, 2 * radius + 1)
    kernel[radius, radius] = 0
    return kernel


def random_oscillators(shape: tuple, n: int, generator: torch.Generator):
    """States drawn uniformly on S^{n-1}. -> [*shape, n]"""
    return F.normalize(torch.randn(*shape, n, generator=generator), dim=-1)


def random_omega(n: int, scale: float, generator: torch.Generator):
    """An antisymmetric matrix scale (A - A^T) / 2, A standard normal. -> [n, n]"""
    a = torch.randn(n, n, generator=generator)
    return scale * (a - a.T) / 2


def glyph_scenes(n: int, seed: int, size: int = SIZE, objects: int = OBJECTS):
    """n scenes of `objects` glyphs of `course.data.GLYPHS` at random places, at least one empty pixel
    apart (no two glyphs are 8-neighbours).
    -> images [n, size, size], masks [n, size, size] (0: background, k: the k-th glyph)"""
    check_int("akorn.glyph_scenes", "n", n, low=0)
    check_int("akorn.glyph_scenes", "objects", objects, low=1, high=((size + 1) // (GLYPH + 1)) ** 2)
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, size, size, dtype=torch.long)
    for s in range(n):
        boxes = []
        for _ in range(10_000):
            r, col = torch.randint(size - GLYPH + 1, (2,), generator=g).tolist()
            if all(abs(r - r2) >= GLYPH + 1 or abs(col - c2) >= GLYPH + 1 for r2, c2 in boxes):
                boxes.append((r, col))
            if len(boxes) == objects:
                break
        else:
            raise ValueError(f"akorn.glyph_scenes: could not place `objects` = {objects} glyphs apart on "
                             f"{size} x {size}.")
        for k, (r, col) in enumerate(boxes):
            glyph = GLYPHS[torch.randint(len(GLYPHS), (1,), generator=g).item()]
            masks[s, r:r + GLYPH, col:col + GLYPH] = (glyph > 0) * (k + 1)
    return (masks > 0).float(), masks


def discovery_nmi(states, masks, seed: int) -> float:
    """NMI of k-means (k = the scene's glyphs, best of RESTARTS by inertia) on the glyphs' pixels' states
    against the glyph masks. states [H, W, N], masks [H, W] -> float"""
    on = masks > 0
    points, labels = states[on], masks[on]
    k = int(labels.max())
    best, best_inertia = None, float("inf")
    for r in range(RESTARTS):
        assignment, centres = kmeans(points, k, seed=seed * RESTARTS + r)
        inertia = (points - centres[assignment]).pow(2).sum().item()
        if inertia < best_inertia:
            best, best_inertia = assignment, inertia
    return normalized_mutual_information(best, labels)


def synchrony(states, masks) -> tuple[float, float]:
    """(mean over glyphs of the order parameter |mean of its oscillators| (1: in step), mean cosine between
    two glyphs' mean directions). states [H, W, N], masks [H, W]"""
    means = torch.stack([states[masks == k].mean(0) for k in range(1, int(masks.max()) + 1)])  # [K, N]
    directions = F.normalize(means, dim=-1)
    k = len(means)
    between = (directions @ directions.T).sum() - k
    return means.norm(dim=-1).mean().item(), (between / max(k * (k - 1), 1)).item()


@functools.lru_cache(maxsize=3)
@one_thread()
def akorn_experiment(seed: int) -> dict:
    """The same Kuramoto dynamics from the same random states, with the gated local coupling and with J = 0;
    the glyphs' NMI and synchrony after STEPS updates, averaged over SCENES scenes."""
    images, masks = glyph_scenes(SCENES, seed)
    g = torch.Generator().manual_seed(seed)
    x0 = random_oscillators(images.shape, N, g)
    omega = random_omega(N, OMEGA_SCALE, g)
    c = torch.zeros_like(x0)
    out = {}
    for name, kernel in (("coupled", neighbour_kernel()), ("uncoupled", torch.zeros(3, 3))):
        x = kuramoto(x0, omega, c, images, kernel)
        scores = [discovery_nmi(x[s], masks[s], seed) for s in range(SCENES)]
        sync = [synchrony(x[s], masks[s]) for s in range(SCENES)]
        out[f"nmi_{name}"] = sum(scores) / SCENES
        out[f"order_{name}"] = sum(o for o, _ in sync) / SCENES
        out[f"between_cosine_{name}"] = sum(b for _, b in sync) / SCENES
        out[f"sphere_error_{name}"] = (x.norm(dim=-1) - 1).abs().max().item()
    out["nmi_gain"] = out["nmi_coupled"] - out["nmi_uncoupled"]
    return out


CLAIM = Claim(
    paper="Miyato et al. 2024",
    citation="Artificial Kuramoto Oscillatory Neurons (arXiv:2410.13821), section 3 (the Kuramoto update "
             "on the sphere) and section 5 (unsupervised object discovery by synchrony)",
    statement="coupled Kuramoto oscillators bind the features of one object: without labels, the "
              "oscillators of one object synchronise and those of different objects do not, so that "
              "clustering their states recovers the objects",
    kind=REPRODUCTION,
    experiment=akorn_experiment,
    thresholds=("nmi_coupled >= 0.8", "nmi_uncoupled <= 0.3", "nmi_gain >= 0.5"),
    summary=lambda m: (
        f"NMI of k-means on the glyphs' oscillators against the glyph masks: {m['nmi_coupled']:.2f} with "
        f"the local coupling, {m['nmi_uncoupled']:.2f} with J = 0; order parameter within a glyph "
        f"{m['order_coupled']:.2f} against {m['order_uncoupled']:.2f}, cosine between two glyphs' mean "
        f"states {m['between_cosine_coupled']:.2f}"),
    note="Untrained: a fixed 8-neighbour kernel gated by the pixels' intensity stands in for the paper's "
         "learned convolutional coupling, on 8 scenes of 3 glyphs 16x16, N = 4, 60 steps of gamma = 0.1 "
         "from random states, one shared Omega, c = 0. The glyphs never touch, so the coupling's "
         "connected components are the glyphs: what is measured is that the dynamics synchronise each "
         "of them within 60 steps and leave different ones apart.",
)
