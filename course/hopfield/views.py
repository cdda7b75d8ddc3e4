"""What the energy widget draws: retrieval from a corrupted query, update by update, with the energy
after each, in the classical and the modern Hopfield network; and a 2-D toy's energy surface.

Stored patterns are images of SIDE x SIDE = D = 64 pixels, rows of X [M, D] with values +-1:
- glyph images (`course.data.glyph_images` without noise): a glyph (X, O, disc, L) at one of four places,
  16 distinct images in all. They are strongly correlated (they share most of their background), so
  Hebb's rule mixes them up well below the capacity of random patterns: from about 3 of them on, the
  classical network falls into spurious states, with 8 or more into the blank image (every pixel -1);
- random +-1 images (`course.hopfield.classical.random_patterns`), for which the classical capacity is
  about 0.138 D (Amit, Gutfreund & Sompolinsky 1985): about 9 patterns at D = 64.
The query is the first stored pattern x_0 ("pattern 1" in the widget), corrupted by noise (a fraction
of its pixels flipped) or by a mask (the last fraction of its pixels, row by row, set to 0: unknown).

Updates (each a step the widget draws):
- classical (Hopfield 1982): W = (1/D) sum_mu x_mu x_mu^T with zero diagonal (Hebb's rule); a step is one
  asynchronous sweep, every unit set to the sign of its field in a seeded random order; energy
  E(s) = -1/2 s^T W s (`course.hopfield.classical`), which no single-unit update raises (a masked unit,
  0, set to sgn(h) lowers E by |h|);
- modern, softmax (Ramsauer et al. 2020, arXiv:2008.02217, eq. 3): xi <- X^T softmax(beta X xi), with
  the energy of eq. 2 (`course.hopfield.modern`), which the update never raises (Theorem 1, CCCP);
  at small beta the fixed point is an average over many patterns (a metastable state, section 2);
- modern, sparsemax (Hu et al. 2023; STanHop, arXiv:2312.17346, section 3): xi <- X^T sparsemax(beta X
  xi), with the energy H(xi) = -Psi*(beta X xi) / beta + |xi|^2 / 2 (`course.hopfield.sparse`).

`retrieval_steps` runs one setting (float64); `summary` says what happened; `toy` is the 2-D picture:
TOY_PATTERNS in the plane, the modern energy on a grid and one query's trajectory on it, at beta * D
(`toy_beta`: the toy's points have |x|^2 about 1, the images |x|^2 = D, so beta |x|^2 is the same).
"""
import functools
from dataclasses import dataclass

import torch

from course.checks import check_int
from course.data import glyph_images
from course.hopfield import classical, modern, sparse
from course.hopfield.modern import check_beta
from course.streaming import sparsemax

WHERE = "hopfield.views"
SIDE = 8                  # images are SIDE x SIDE pixels
D = SIDE * SIDE
STEPS = 5                 # updates drawn after the query
CLASSICAL, MODERN = "classical", "modern"
KINDS = (CLASSICAL, MODERN)
SOFTMAX, SPARSEMAX = "softmax", "sparsemax"
WEIGHTINGS = (SOFTMAX, SPARSEMAX)
NOISE, MASK = "noise", "mask"
CORRUPTIONS = (NOISE, MASK)
GLYPH_SET, RANDOM_SET = "glyph images", "random ±1"
PATTERN_SETS = (GLYPH_SET, RANDOM_SET)
MAX_PATTERNS = {GLYPH_SET: 16, RANDOM_SET: 32}  # 16: every glyph at every place
CAPACITY = 0.138          # Amit et al. 1985: random patterns stored per unit, classical network
RETRIEVED = 0.95          # overlap with the stored pattern from which a query counts as retrieved
BLEND = 0.9               # a last update whose largest weight is below this averages patterns
TOY_PATTERNS = torch.tensor([[1.0, 0.25], [0.75, 0.7], [-0.9, 0.35], [-0.15, -1.0]], dtype=torch.float64)
TOY_START = torch.tensor([0.45, -0.1], dtype=torch.float64)
TOY_BETA_SCALE = D  # the toy runs at beta * D: its |x|^2 is about 1, the images' is D
TOY_STEPS = 8
TOY_SPAN, TOY_POINTS = 1.6, 41  # the grid: [-span, span]^2, points per axis


def check_choice(where: str, name: str, value, choices: tuple):
    if value not in choices:
        raise ValueError(f"{where}: `{name}` must be one of {choices}; got {value!r}.")


def check_amount(where: str, amount) -> float:
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not 0 <= amount <= 1:
        raise ValueError(f"{where}: `amount` must be a fraction of the pixels in [0, 1]; got {amount!r}.")
    return float(amount)


@functools.lru_cache(maxsize=None)
def all_glyph_images() -> torch.Tensor:
    """The 16 distinct noiseless glyph images as +-1 rows [16, D] (float64), in the order in which
    `glyph_images(256, noise=0, seed=0)` first draws them."""
    images, what, where = glyph_images(256, noise=0.0, seed=0)
    seen, rows = set(), []
    for image, glyph, place in zip(images, what.tolist(), where.tolist()):
        if (glyph, place) not in seen:
            seen.add((glyph, place))
            rows.append(image.flatten())
    return torch.stack(rows).double() * 2 - 1


def stored_patterns(pattern_set: str, n_patterns: int, seed: int = 0) -> torch.Tensor:
    """X [n_patterns, D] of +-1 (float64): distinct glyph images in a seeded order, or random patterns."""
    where = f"{WHERE}.stored_patterns"
    check_choice(where, "pattern_set", pattern_set, PATTERN_SETS)
    check_int(where, "n_patterns", n_patterns, low=1, high=MAX_PATTERNS[pattern_set])
    check_int(where, "seed", seed, low=0)
    g = torch.Generator().manual_seed(seed)
    if pattern_set == GLYPH_SET:
        glyphs = all_glyph_images()
        return glyphs[torch.randperm(len(glyphs), generator=g)[:n_patterns]]
    return classical.random_patterns(n_patterns, D, g).double()


def corrupt(pattern: torch.Tensor, corruption: str, amount: float, seed: int = 0) -> torch.Tensor:
    """The query: pattern [D] with round(amount D) pixels flipped at seeded random places (noise), or
    its last round(amount D) pixels, row by row, set to 0 (mask). -> [D]"""
    where = f"{WHERE}.corrupt"
    check_choice(where, "corruption", corruption, CORRUPTIONS)
    amount = check_amount(where, amount)
    if corruption == NOISE:
        return classical.flip(pattern[None], amount, torch.Generator().manual_seed(seed + 1))[0]
    query = pattern.clone()
    k = round(amount * len(pattern))
    if k:
        query[-k:] = 0.0
    return query


@dataclass(frozen=True, eq=False)
class Retrieval:
    """One setting's retrieval: the query x_0 corrupted, and STEPS updates."""

    kind: str
    weighting: str               # softmax for the classical network, which has no weights (not used)
    beta: float                  # the modern network's (not used by the classical one)
    pattern_set: str
    corruption: str
    amount: float
    patterns: torch.Tensor       # [M, D] the stored patterns; the query comes from patterns[0]
    states: torch.Tensor         # [STEPS + 1, D] the query, then the state after each update
    energies: torch.Tensor       # [STEPS + 1] the energy of each state (the kind's and weighting's own)
    weights: torch.Tensor | None  # [STEPS, M] each modern update's weights over the patterns; None classical

    @property
    def overlaps(self) -> torch.Tensor:
        """m_t = xi_t . x_0 / D for each state. [STEPS + 1]"""
        return self.states @ self.patterns[0] / self.patterns.shape[1]

    @property
    def retrieved(self) -> bool:
        return float(self.overlaps[-1]) >= RETRIEVED

    @property
    def largest_weight(self) -> float | None:
        return None if self.weights is None else float(self.weights[-1].max())

    @property
    def blend(self) -> bool:
        """A modern update that still averages patterns: its largest weight is below BLEND."""
        return self.weights is not None and self.largest_weight < BLEND

    @property
    def nearest(self) -> int:
        """The stored pattern closest to the last state."""
        return int(torch.cdist(self.states[-1:], self.patterns)[0].argmin())

    @property
    def wrong_pixels(self) -> int:
        """Pixels of the last state whose sign differs from x_0's (0 counts as wrong)."""
        return int((self.states[-1] * self.patterns[0] <= 0).sum())


def weights_of(weighting: str, states: torch.Tensor, patterns: torch.Tensor, beta: float) -> torch.Tensor:
    """softmax or sparsemax of beta X xi for states [T, D]. -> [T, M]"""
    z = beta * (states @ patterns.T)
    return z.softmax(-1) if weighting == SOFTMAX else sparsemax(z, dim=-1)


def retrieval_steps(kind: str, weighting: str, beta: float, n_patterns: int, corruption: str, amount: float,
                    seed: int = 0, pattern_set: str = GLYPH_SET) -> Retrieval:
    """The query (the first stored pattern, corrupted) and STEPS updates of the `kind` network, with their
    energies. beta and weighting apply to the modern network only (they are ignored for classical)."""
    where = f"{WHERE}.retrieval_steps"
    check_choice(where, "kind", kind, KINDS)
    check_choice(where, "weighting", weighting, WEIGHTINGS)
    beta = check_beta(where, beta)
    amount = check_amount(where, amount)
    X = stored_patterns(pattern_set, n_patterns, seed)
    query = corrupt(X[0], corruption, amount, seed)
    return _steps(kind, weighting, beta, pattern_set, corruption, amount, seed, X, query)


def _steps(kind, weighting, beta, pattern_set, corruption, amount, seed, X, query) -> Retrieval:
    states, weights = [query], None
    if kind == CLASSICAL:
        W = classical.hebbian_weights(X)
        g = torch.Generator().manual_seed(seed + 2)
        for _ in range(STEPS):
            states.append(classical.update_asynchronous(states[-1][None], W, g)[0])
        path = torch.stack(states)
        energies = classical.energy(path, W)
        weighting = SOFTMAX  # not used: the classical network has none
    elif weighting == SOFTMAX:
        path, energies = modern.trajectory(query, X, beta, STEPS)
    else:
        for _ in range(STEPS):
            states.append(sparse.sparse_retrieve(states[-1][None], X, beta)[0])
        path = torch.stack(states)
        energies = sparse.sparse_energy(path, X, beta)
    if kind == MODERN:
        weights = weights_of(weighting, path[:-1], X, beta)
    return Retrieval(kind, weighting, beta, pattern_set, corruption, amount, X, path, energies, weights)


def energy_name(r: Retrieval) -> str:
    """The energy the plot shows, with where it comes from."""
    if r.kind == CLASSICAL:
        return "E = -½ sᵀWs"
    return "E (eq. 2)" if r.weighting == SOFTMAX else "H (sparsemax)"


def network_name(r: Retrieval) -> str:
    if r.kind == CLASSICAL:
        return "classical network (Hebb's rule, asynchronous sweeps)"
    return f"modern network ({r.weighting}, β = {r.beta:.3g})"


def corruption_text(r: Retrieval) -> str:
    share = f"{100 * r.amount:.0f}%"
    return f"{share} of its pixels flipped" if r.corruption == NOISE else f"its last {share} of pixels masked"


def participation(weights: torch.Tensor) -> float:
    """1 / sum_j p_j^2: about how many patterns weights p [M] average (1 for one pattern, M for all)."""
    return float(1.0 / (weights * weights).sum())


def outcome(r: Retrieval) -> str:
    """What the last state is: the stored pattern, another one, a blend, or a spurious state."""
    m = float(r.overlaps[-1])
    if r.retrieved:
        error = float((r.states[-1] - r.patterns[0]).abs().max())
        wrong = r.wrong_pixels
        how = ("exactly" if error < 1e-3 else f"every sign right, largest pixel error {error:.2f}"
               if wrong == 0 else f"{wrong} pixel{'s' * (wrong > 1)} wrong")
        return f"retrieved ({how}; overlap {m:.2f})"
    if r.blend:
        return (f"not retrieved: a metastable average of about {participation(r.weights[-1]):.1f} patterns "
                f"(largest weight {r.largest_weight:.2f}; overlap {m:.2f} with the stored pattern)")
    nearest = r.nearest
    if nearest != 0 and torch.allclose(r.states[-1], r.patterns[nearest], atol=0.05):
        return f"not retrieved: it fell into stored pattern {nearest + 1} (overlap {m:.2f})"
    if r.kind == CLASSICAL and bool((r.states[-1] == -1).all()):
        return (f"not retrieved: every pixel off, the spurious state that the patterns' shared background "
                f"makes (overlap {m:.2f})")
    if r.kind == CLASSICAL:
        return f"not retrieved: a spurious state, {r.wrong_pixels} pixels wrong (overlap {m:.2f})"
    return f"not retrieved (overlap {m:.2f})"


def capacity_text(r: Retrieval) -> str:
    M, Dim = r.patterns.shape
    load = f"{M} stored {r.pattern_set} (D = {Dim}, M/D = {M / Dim:.2f}"
    if r.kind != CLASSICAL:
        return load + ")"
    cap = f"the capacity for random patterns is about {CAPACITY} D = {CAPACITY * Dim:.0f}"
    if r.pattern_set == GLYPH_SET:
        cap += "; correlated glyphs fail earlier"
    return f"{load}; {cap})"


def energy_trend(energies: torch.Tensor) -> str:
    """"never rising", or the first update that raised the energy (none should: the tests check)."""
    if energy_is_monotone(energies):
        return "never rising"
    k = int(((energies[1:] > energies[:-1]).nonzero()[0]))
    return f"rising at update {k + 1}"


def summary(r: Retrieval) -> str:
    """One line: the network, the load, the query, what the last update gives, and the energy's fall."""
    e = r.energies
    return (f"{network_name(r)}, {capacity_text(r)}. Query: pattern 1 with {corruption_text(r)}. After "
            f"{STEPS} updates: {outcome(r)}. Energy {float(e[0]):.4g} → {float(e[-1]):.4g}, "
            f"{energy_trend(e)}.")


@dataclass(frozen=True, eq=False)
class Toy:
    """The 2-D toy for one beta and weighting."""

    weighting: str
    beta: float
    alphas: torch.Tensor    # [A] the grid's first coordinate
    betas: torch.Tensor     # [B] the second
    surface: torch.Tensor   # [A, B] the energy, shifted to be positive (see `toy`)
    path: torch.Tensor      # [TOY_STEPS + 1, 2] the trajectory from TOY_START
    path_energies: torch.Tensor  # [TOY_STEPS + 1]


def toy_energy(states: torch.Tensor, weighting: str, beta: float) -> torch.Tensor:
    """The energy of states [N, 2] against TOY_PATTERNS: eq. 2 (>= 0) for softmax; for sparsemax H plus
    max_j |x_j|^2 / 2 + 1 / (2 beta), a constant that makes it > 0 (Psi*(z) < max z + 1/2). -> [N]"""
    if weighting == SOFTMAX:
        return modern.energy(states, TOY_PATTERNS, beta)
    shift = 0.5 * float((TOY_PATTERNS ** 2).sum(1).max()) + 0.5 / beta
    return sparse.sparse_energy(states, TOY_PATTERNS, beta) + shift


@functools.lru_cache(maxsize=64)
def toy(weighting: str, beta: float) -> Toy:
    """The modern energy of TOY_PATTERNS on a TOY_POINTS x TOY_POINTS grid and the trajectory of TOY_START
    under TOY_STEPS updates (softmax or sparsemax)."""
    where = f"{WHERE}.toy"
    check_choice(where, "weighting", weighting, WEIGHTINGS)
    beta = check_beta(where, beta)
    axis = torch.linspace(-TOY_SPAN, TOY_SPAN, TOY_POINTS, dtype=torch.float64)
    a, b = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([a.flatten(), b.flatten()], 1)
    surface = toy_energy(grid, weighting, beta).view(TOY_POINTS, TOY_POINTS)
    update = modern.retrieve if weighting == SOFTMAX else sparse.sparse_retrieve
    states = [TOY_START]
    for _ in range(TOY_STEPS):
        states.append(update(states[-1][None], TOY_PATTERNS, beta)[0])
    path = torch.stack(states)
    return Toy(weighting, beta, axis, axis.clone(), surface, path, toy_energy(path, weighting, beta))


def toy_beta(beta: float) -> float:
    """The toy's beta for the images' beta: the same beta |x|^2 (TOY_PATTERNS have |x|^2 about 1)."""
    return check_beta(f"{WHERE}.toy_beta", beta) * TOY_BETA_SCALE


def toy_text(t: Toy) -> str:
    """Where the toy's trajectory ends: at a stored point or between them."""
    end = t.path[-1]
    distances = (TOY_PATTERNS - end).norm(dim=1)
    k = int(distances.argmin())
    if float(distances[k]) < 0.1:
        return f"the query ends at stored point {k + 1} (within {float(distances[k]):.2f})"
    return (f"the query ends at ({float(end[0]):.2f}, {float(end[1]):.2f}), between the stored points "
            f"({float(distances[k]):.2f} from the nearest, point {k + 1})")


def energy_is_monotone(energies: torch.Tensor, tolerance: float = 1e-9) -> bool:
    """No energy above the one before it (up to tolerance times the energies' scale)."""
    scale = max(1.0, float(energies.abs().max()))
    return bool((energies[1:] <= energies[:-1] + tolerance * scale).all())

