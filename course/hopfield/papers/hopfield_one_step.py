"""Retrieval in one update from a corrupted pattern.

Ramsauer et al. 2020, "Hopfield Networks is All You Need" (arXiv:2008.02217), section 2, Theorem 4: a
pattern x_i that is well separated from the others (Delta_i = x_i . x_i - max_j x_i . x_j large against
log(M) / beta) is retrieved by ONE update xi <- softmax(beta xi X^T) X (eq. 3), with an error that is
exponentially small in beta Delta_i; further updates change nothing that matters. The classical network
(Hebb's couplings, asynchronous sweeps to a fixed point) is the baseline with the same stored patterns.

The experiment (`one_step_experiment`, a reproduction): M = LOAD D random +-1 patterns in D = DIM units
(LOAD is several times the classical capacity 0.138), queried with two corruptions of every pattern:
`flip` (a fraction FLIPPED of the units flipped) and `mask` (a fraction MASKED of the units set to 0,
"unknown"). Errors are the fraction of units whose sign differs from the stored pattern:

- the modern network after one update and after MANY updates, at beta = BETA;
- the classical network after asynchronous sweeps to its fixed point, at the same load, and at a load
  LOW_LOAD inside its capacity;
- at beta = 1 / sqrt(D), the scale of a transformer's attention, the distance of the state to the
  pattern after one update and after two (reported, no threshold: there one update is not yet a fixed
  point, which is what Theorem 4's dependence on beta says);
- the glyph images of `course.data` (the notebook's and the widget's patterns): the 16 clean glyphs
  stored as +-1 images of 64 pixels, queried with noisy glyph images (pixel noise GLYPH_NOISE).
"""
import math

import torch

from course import data
from course.checks import check_int
from course.claims import REPRODUCTION, Claim
from course.hopfield import classical, modern

DIM, LOAD, LOW_LOAD = 200, 1.0, 0.05
FLIPPED, MASKED = 0.2, 0.5
BETA, MANY = 1.0, 5
SWEEPS = 20
GLYPH_QUERIES, GLYPH_NOISE = 128, 0.3


def mask(patterns, fraction: float, generator: torch.Generator):
    """Each pattern with round(fraction D) of its units set to 0 at random positions. [M, D] -> [M, D]"""
    if not 0 <= fraction <= 1:
        raise ValueError(f"mask: `fraction` must be in [0, 1]; got {fraction}.")
    M, D = patterns.shape
    hidden = torch.rand(M, D, generator=generator).argsort(1)[:, :round(fraction * D)]
    return patterns.clone().scatter_(1, hidden, 0.0)


def bit_error(states, patterns) -> float:
    """The fraction of units whose sign (sgn(0) = +1) differs from the pattern's, over all states."""
    return float((classical.sgn(states) != patterns).float().mean())


def relative_distance(states, patterns) -> float:
    """The mean of ||xi - x|| / ||x|| over the states [N, D] and their patterns [N, D]."""
    return float(((states - patterns).norm(dim=1) / patterns.norm(dim=1)).mean())


def corrupt(patterns, kind: str, generator: torch.Generator):
    """The queries: `flip` (FLIPPED of the units flipped) or `mask` (MASKED of them set to 0)."""
    if kind == "flip":
        return classical.flip(patterns, FLIPPED, generator)
    if kind == "mask":
        return mask(patterns, MASKED, generator)
    raise ValueError(f"corrupt: `kind` must be 'flip' or 'mask'; got {kind!r}.")


def classical_error(patterns, queries, generator: torch.Generator, sweeps: int = SWEEPS) -> float:
    """Bit error of the classical network (Hebb, asynchronous sweeps to a fixed point) from the queries."""
    W = classical.hebbian_weights(patterns)
    return bit_error(classical.recall(queries, W, sweeps, generator), patterns)


def glyph_memory():
    """The clean glyph images, every glyph at every place, as +-1 patterns (pixel on: +1). -> [16, 64]"""
    images = torch.full((len(data.GLYPHS), len(data.PLACES), data.CANVAS, data.CANVAS), -1.0)
    for p, (row, col) in enumerate(data.PLACES):
        images[:, p, row:row + data.GLYPH, col:col + data.GLYPH] = 2 * data.GLYPHS - 1
    return images.reshape(len(data.GLYPHS) * len(data.PLACES), -1)


def glyph_queries(n: int, noise: float, seed: int):
    """n noisy glyph images of `course.data.glyph_images` mapped to [-1, 1] scale (2 image - 1) [n, 64], and
    the index of their clean glyph in `glyph_memory()` [n]."""
    images, what, where = data.glyph_images(n, noise, seed)
    return 2 * images.reshape(n, -1) - 1, what * len(data.PLACES) + where


def one_step_experiment(seed: int) -> dict:
    """Bit errors of one and of MANY modern updates against the classical network's fixed point."""
    check_int("one_step_experiment", "seed", seed, low=0)
    g = torch.Generator().manual_seed(seed)
    out = {}
    patterns = classical.random_patterns(round(LOAD * DIM), DIM, g)
    low = classical.random_patterns(round(LOW_LOAD * DIM), DIM, g)
    for kind in ("flip", "mask"):
        queries = corrupt(patterns, kind, g)
        one = modern.retrieve(queries, patterns, BETA, steps=1)
        many = modern.retrieve(queries, patterns, BETA, steps=MANY)
        out[f"modern_error_1_{kind}"] = bit_error(one, patterns)
        out[f"modern_error_{MANY}_{kind}"] = bit_error(many, patterns)
        out[f"modern_distance_1_{kind}"] = relative_distance(one, patterns)
        out[f"classical_error_{kind}"] = classical_error(patterns, queries, g)
        out[f"classical_error_low_{kind}"] = classical_error(low, corrupt(low, kind, g), g)
        attention = 1 / math.sqrt(DIM)
        out[f"sqrt_beta_distance_1_{kind}"] = relative_distance(
            modern.retrieve(queries, patterns, attention, steps=1), patterns)
        out[f"sqrt_beta_distance_2_{kind}"] = relative_distance(
            modern.retrieve(queries, patterns, attention, steps=2), patterns)
    out["one_step_gap"] = max(out[f"modern_error_1_{k}"] - out[f"modern_error_{MANY}_{k}"]
                              for k in ("flip", "mask"))
    memory = glyph_memory()
    queries, index = glyph_queries(GLYPH_QUERIES, GLYPH_NOISE, seed)
    state = modern.retrieve(queries, memory, BETA, steps=1)
    out["glyph_modern_retrieved"] = float((classical.sgn(state) == memory[index]).all(1).float().mean())
    final = classical.recall(classical.sgn(queries), classical.hebbian_weights(memory), SWEEPS, g)
    out["glyph_classical_retrieved"] = float((final == memory[index]).all(1).float().mean())
    return out


CLAIM = Claim(
    paper="Ramsauer et al. 2020",
    citation="Hopfield Networks is All You Need (arXiv:2008.02217), section 2, Theorem 4 (retrieval "
             "with one update, error exponentially small in beta times the separation)",
    statement="the modern Hopfield network retrieves a corrupted (noisy or half-masked) pattern with one "
              "update, as well as with several, at a load where the classical network fails",
    kind=REPRODUCTION,
    experiment=one_step_experiment,
    thresholds=("modern_error_1_flip <= 0.001", "modern_error_1_mask <= 0.001", "one_step_gap <= 0.001",
                "classical_error_flip >= 0.05", "classical_error_mask >= 0.05",
                "glyph_modern_retrieved >= 0.95"),
    summary=lambda m: (
        f"M = {round(LOAD * DIM)} patterns ({LOAD:g} D) in D = {DIM}: the modern network's bit error after "
        f"one update is {m['modern_error_1_flip']:.2g} ({FLIPPED:.0%} flipped) and "
        f"{m['modern_error_1_mask']:.2g} ({MASKED:.0%} masked), after {MANY}: "
        f"{m[f'modern_error_{MANY}_flip']:.2g} and "
        f"{m[f'modern_error_{MANY}_mask']:.2g}; the classical network's fixed point errs on "
        f"{m['classical_error_flip']:.0%} and {m['classical_error_mask']:.0%} of the units (at "
        f"{LOW_LOAD:g} D: {m['classical_error_low_flip']:.2g}, {m['classical_error_low_mask']:.2g}); at "
        f"beta = 1/sqrt(D) the distance after one update is {m['sqrt_beta_distance_1_mask']:.2g} (masked), "
        f"after two "
        f"{m['sqrt_beta_distance_2_mask']:.2g}; noisy glyphs retrieved {m['glyph_modern_retrieved']:.0%} "
        f"(modern, one update) against {m['glyph_classical_retrieved']:.0%} (classical)"),
    note=f"D = {DIM} random +-1 patterns, beta = {BETA}; the glyph memory holds the 16 clean glyph images "
         f"(4 glyphs x 4 places, 64 pixels), queried with pixel noise {GLYPH_NOISE}.",
)
