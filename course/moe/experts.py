"""The experts of an MoE layer, run over the grouped layout that dispatch produces.

Each expert is a feed-forward network with one ReLU hidden layer, as in Shazeer et al. 2017
(section 3): E_e(x) = ReLU(x W1_e) W2_e. Dispatch puts expert e's rows in one contiguous block of
`counts[e]` rows, so all experts together are one *grouped* matrix product over blocks of different
sizes, with no padding (MegaBlocks, Gale et al. 2022; ScatterMoE, Tan et al. 2024).

Shapes: S grouped rows, D model features, H hidden features, E experts.
"""
from typing import NamedTuple

import torch

from course.checks import check_same_device, check_shape, check_tensor


def check_expert_mlp_args(x, counts, w1, w2, where="moe.expert_mlp"):
    """Validate the arguments shared by every expert_mlp backend."""
    check_tensor(where, "x", x, ndim=2, kind="float")
    check_tensor(where, "counts", counts, ndim=1, kind="int")
    check_tensor(where, "w1", w1, ndim=3, kind="float")
    check_tensor(where, "w2", w2, ndim=3, kind="float")
    check_same_device(where, x=x, counts=counts, w1=w1, w2=w2)
    E, D, H = w1.shape
    check_shape(where, "w1", w1, (E, x.shape[1], H), "[E, D, H] with D = x.shape[1]")
    check_shape(where, "w2", w2, (E, H, x.shape[1]), "[E, H, D] with E, H from w1")
    check_shape(where, "counts", counts, (E,), "[E] with E = w1.shape[0]")
    if w1.dtype != x.dtype or w2.dtype != x.dtype:
        raise TypeError(f"{where}: `w1` and `w2` must have the dtype of `x` ({x.dtype}); "
                        f"got {w1.dtype} and {w2.dtype}.")
    if (counts.numel() and counts.min().item() < 0) or int(counts.sum()) != x.shape[0]:
        raise ValueError(f"{where}: `counts` must be non-negative and sum to S = x.shape[0] = "
                         f"{x.shape[0]}; got {counts.tolist()} (sum {counts.sum().item()}).")


class ExpertTiles(NamedTuple):
    """The tile map of a grouped matmul: which expert and which rows each row tile covers."""

    expert: torch.Tensor  # [n_tiles] expert whose weights the tile multiplies
    start: torch.Tensor   # [n_tiles] first row of the tile
    end: torch.Tensor     # [n_tiles] one past its last row (at most start + block_m)


def expert_tiles(counts, block_m: int) -> ExpertTiles:
    """MegaBlocks' block-sparse tiling: each expert's rows cut into tiles of at most `block_m` rows.

    A tile never straddles two experts, so one kernel program multiplies all its rows by one expert's
    weights; only an expert's last tile is partial, and an empty expert has no tile at all.
    counts [E] -> ExpertTiles(expert, start, end), each [n_tiles] with
    n_tiles = sum_e ceil(counts[e] / block_m).
    """
    counts = counts.long()
    tiles = (counts + block_m - 1) // block_m  # [E] tiles per expert
    n_tiles = int(tiles.sum())  # the grid size, so the host needs it anyway
    arange = torch.arange(n_tiles, device=counts.device)
    expert = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), tiles,
                                     output_size=n_tiles)
    first_tile = (tiles.cumsum(0) - tiles)[expert]  # [n_tiles] the expert's first tile
    first_row = (counts.cumsum(0) - counts)[expert]  # [n_tiles] the expert's first row
    start = first_row + (arange - first_tile) * block_m
    end = torch.minimum(start + block_m, first_row + counts[expert])
    return ExpertTiles(expert, start, end)


def expert_mlp(x, counts, w1, w2):
    """Shazeer et al. 2017 experts, ReLU(x W1_e) W2_e, one expert block at a time.

    x [S, D] grouped by expert, counts [E], w1 [E, D, H], w2 [E, H, D] -> [S, D].
    """
    check_expert_mlp_args(x, counts, w1, w2)
    blocks = x.split(counts.tolist())  # expert e's rows
    out = [torch.relu(rows @ w1[e]) @ w2[e] for e, rows in enumerate(blocks)]
    return torch.cat(out) if out else x.new_zeros(0, x.shape[1])


def expert_mlp_padded(x, counts, w1, w2):
    """The same experts as one batched matmul over blocks zero-padded to the largest block.

    Simple and fast while the experts are balanced; it computes E * max(counts) rows, so the padding
    wastes work in proportion to the imbalance (what MegaBlocks removes).
    x [S, D], counts [E], w1 [E, D, H], w2 [E, H, D] -> [S, D].
    """
    check_expert_mlp_args(x, counts, w1, w2)
    E, S = counts.shape[0], x.shape[0]
    longest = int(counts.max()) if E else 0
    offsets = counts.cumsum(0) - counts  # [E]
    expert = torch.repeat_interleave(torch.arange(E, device=x.device), counts)  # [S]
    position = torch.arange(S, device=x.device) - offsets[expert]  # [S] row inside its block
    padded = x.new_zeros(E, longest, x.shape[1]).index_put((expert, position), x)  # [E, M, D]
    out = torch.bmm(torch.relu(torch.bmm(padded, w1)), w2)  # [E, M, D]
    return out[expert, position]
