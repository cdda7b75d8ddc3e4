"""Expert parallelism: the experts of one MoE layer spread over processes, tokens moved by all-to-all.

DeepSpeed-TED (Singh et al. 2023, "A Hybrid Tensor-Expert-Data Parallelism Approach to Optimize
Mixture-of-Experts Training") trains MoE models with expert parallelism as one of its three axes, the
scheme GShard (Lepikhin et al. 2020) introduced: each of W ranks holds E / W experts and its own shard
of the tokens, and two all-to-all collectives move every routed token row to the rank that owns its
expert and the expert's output back. The router is small, so every rank holds a copy of it.

Rank r, with T_r local tokens, D features, k experts per token, E_l = E / W local experts:

    gate      x_r [T_r, D] -> expert_index, gates [T_r, k]        (replicated W_g, W_noise)
    dispatch  rows [T_r k, D] grouped by global expert; experts are owned in contiguous ranges, so
              the rows are also grouped by destination rank: send_splits [W]
    counts    all-to-all of counts [W, E_l] -> received [W, E_l] (rows from rank p for local expert e)
    all-to-all #1 (dispatch)  rows [T_r k, D] -> arrived [R_r, D], ordered (source rank, local expert)
    regroup   arrived[order] -> [R_r, D] ordered (local expert, source rank)
    experts   expert_mlp over E_l blocks with w1 [E_l, D, H], w2 [E_l, H, D] -> [R_r, D]
    all-to-all #2 (combine)   back to (source rank, expert) order, splits swapped -> [T_r k, D]
    combine   gate-weighted sum -> y_r [T_r, D]

The gradient of an all-to-all is the all-to-all with the splits swapped, so the backward pass moves the
same bytes again. Without a capacity no token is dropped, so every token meets the same experts as in
the single-process `MoELayer` and the results agree to rounding.

`course.moe.papers.deepspeed_ted.run_expert_parallel` launches W CPU processes with the gloo backend and
compares them with the single-process layer; `expert_parallel_moe` itself uses only the tensors'
device, so it runs as is under NCCL on GPUs.
"""
from typing import NamedTuple

import torch
import torch.distributed as dist
from torch import nn

from course.moe.dispatch import Dispatched, combine, dispatch
from course.moe.experts import expert_mlp
from course.moe.gating import Gating, noisy_top_k_gating
from course.moe.layer import MoELayer


class AllToAllBytes(NamedTuple):
    """Bytes one rank sends to the other ranks in each all-to-all of a forward pass (its own chunk,
    a local copy, excluded); the backward pass sends the same again."""

    counts: int    # E_l int64 counts to each other rank
    dispatch: int  # token rows to the experts' owners: rows x D x element size
    combine: int   # expert outputs back to the tokens' owners


class ExpertParallelOutput(NamedTuple):
    y: torch.Tensor          # [T_r, D]
    gating: Gating           # of the local tokens
    routed: Dispatched       # the local dispatch, grouped by global expert
    received: torch.Tensor   # [W, E_l] rows this rank's experts got from each rank
    sent: AllToAllBytes


class AllToAll(torch.autograd.Function):
    """A differentiable `dist.all_to_all_single` over rows: the gradient goes back the way it came."""

    @staticmethod
    def forward(ctx, rows, send_splits: list, recv_splits: list, group):
        ctx.send_splits, ctx.recv_splits, ctx.group = send_splits, recv_splits, group
        out = rows.new_empty(sum(recv_splits), rows.shape[1])  # [R, D]
        dist.all_to_all_single(out, rows.contiguous(), recv_splits, send_splits, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        back = AllToAll.apply(grad.contiguous(), ctx.recv_splits, ctx.send_splits, ctx.group)
        return back, None, None, None


def all_to_all_rows(rows, send_splits: list, recv_splits: list, group=None):
    """Send rows[block q] to rank q, receive rank p's block in place p. [S, D] -> [R, D]"""
    return AllToAll.apply(rows, list(send_splits), list(recv_splits), group)


def exchange_counts(counts, world_size: int, group=None):
    """The counts all-to-all, so every rank knows its split sizes: [E] -> [W, E_l].

    Entry [p, e] of the result is how many rows rank p will send to this rank's local expert e.
    """
    received = torch.empty_like(counts)
    dist.all_to_all_single(received, counts.contiguous(), group=group)
    return received.view(world_size, -1)


def regroup_by_expert(received):
    """The row order that turns (source rank, local expert) blocks into (local expert, source rank).

    received [W, E_l] block sizes in arrival order -> order [R] with grouped = arrived[order].
    """
    sizes = received.flatten()  # [W E_l] in arrival order
    starts = sizes.cumsum(0) - sizes  # [W E_l] first arrived row of each block
    sizes_by_expert = received.t().flatten()  # [E_l W]
    starts_by_expert = starts.view_as(received).t().flatten()
    first = torch.repeat_interleave(starts_by_expert, sizes_by_expert)  # [R]
    grouped_starts = sizes_by_expert.cumsum(0) - sizes_by_expert
    inside = torch.arange(first.numel(), device=received.device) - torch.repeat_interleave(
        grouped_starts, sizes_by_expert)  # [R] position inside its block
    return first + inside


def inverse_order(order):
    """The permutation that undoes `order`: rows[order][inverse] == rows. [R] -> [R]"""
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    return inverse


def expert_parallel_moe(x, w_gate, w_noise, w1, w2, k: int, train: bool = True,
                        generator: torch.Generator | None = None, group=None) -> ExpertParallelOutput:
    """One expert-parallel MoE forward (GShard / DeepSpeed-TED): this rank's tokens and experts.

    x [T_r, D], w_gate and w_noise [D, E] (replicated, w_noise may be None), w1 [E_l, D, H] and
    w2 [E_l, H, D] this rank's experts E_l = E / W, rank r owning [r E_l, (r + 1) E_l)
    -> ExpertParallelOutput(y [T_r, D], ...).
    """
    if not dist.is_initialized():
        raise RuntimeError("expert_parallel_moe: needs an initialised torch.distributed process group "
                           "(dist.init_process_group); got none.")
    W, E = dist.get_world_size(group), w_gate.shape[1]
    check_expert_split(E, W, "expert_parallel_moe")
    if w1.shape[0] != E // W or w2.shape[0] != E // W:
        raise ValueError(f"expert_parallel_moe: `w1` and `w2` must hold this rank's E / W = {E // W} "
                         f"experts; got {w1.shape[0]} and {w2.shape[0]}.")
    gating = noisy_top_k_gating(x, w_gate, w_noise, k, train=train, generator=generator)
    routed = dispatch(x, gating.expert_index, E)
    send_splits = routed.counts.view(W, E // W).sum(1).tolist()  # [W] rows for each owner rank
    received = exchange_counts(routed.counts, W, group)  # [W, E_l]
    recv_splits = received.sum(1).tolist()  # [W] rows from each source rank
    arrived = all_to_all_rows(routed.x, send_splits, recv_splits, group)  # [R_r, D]
    order = regroup_by_expert(received)
    h = expert_mlp(arrived[order], received.sum(0), w1, w2)  # [R_r, D] grouped by local expert
    back = all_to_all_rows(h[inverse_order(order)], recv_splits, send_splits, group)  # [T_r k, D]
    y = combine(back, routed.slot, gating.gates)  # [T_r, D]
    row_bytes = x.shape[1] * x.element_size()
    rank = dist.get_rank(group)
    sent = AllToAllBytes(counts=(W - 1) * (E // W) * routed.counts.element_size(),
                         dispatch=(sum(send_splits) - send_splits[rank]) * row_bytes,
                         combine=(sum(recv_splits) - recv_splits[rank]) * row_bytes)
    return ExpertParallelOutput(y, gating, routed, received, sent)


def check_expert_split(num_experts: int, world_size: int, where: str):
    """Expert parallelism gives every rank the same number of experts: W must divide E."""
    if num_experts % world_size:
        raise ValueError(f"{where}: `num_experts` must be divisible by `world_size` so every rank "
                         f"holds E / W experts; got num_experts={num_experts}, "
                         f"world_size={world_size}.")


class ExpertParallelMoE(nn.Module):
    """One rank's part of an `MoELayer`: a copy of the router, and experts [r E_l, (r + 1) E_l)."""

    def __init__(self, layer: MoELayer, rank: int, world_size: int):
        super().__init__()
        check_expert_split(layer.num_experts, world_size, "ExpertParallelMoE")
        if not 0 <= rank < world_size:
            raise ValueError(f"ExpertParallelMoE: `rank` must be in [0, world_size) = "
                             f"[0, {world_size}); got {rank}.")
        local = slice(rank * layer.num_experts // world_size, (rank + 1) * layer.num_experts // world_size)
        self.k = layer.k
        self.w_gate = nn.Parameter(layer.w_gate.detach().clone())
        self.w_noise = None if layer.w_noise is None else nn.Parameter(layer.w_noise.detach().clone())
        self.w1 = nn.Parameter(layer.w1.detach()[local].clone())  # [E_l, D, H]
        self.w2 = nn.Parameter(layer.w2.detach()[local].clone())  # [E_l, H, D]
        self.train(layer.training)

    def forward(self, x, generator: torch.Generator | None = None, group=None) -> ExpertParallelOutput:
        """x [T_r, D] -> ExpertParallelOutput(y [T_r, D], ...)."""
        return expert_parallel_moe(x, self.w_gate, self.w_noise, self.w1, self.w2, self.k,
                                   self.training, generator, group)

    def all_reduce_router_grads(self, group=None):
        """Sum the replicated router's gradients over ranks (each saw only its own tokens)."""
        for p in (self.w_gate, self.w_noise):
            if p is not None and p.grad is not None:
                dist.all_reduce(p.grad, group=group)
