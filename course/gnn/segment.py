"""Aggregation as segment reductions over a CSR: sum, mean, max and softmax, in plain PyTorch.

A node's incoming messages are one contiguous segment of the CSR order, ptr[i]:ptr[i + 1], so
aggregation is a reduction over segments (`torch.segment_reduce`): sequential on the CPU, and
without atomics, hence deterministic. An empty segment (an isolated node) reduces to 0, whatever the
reduction (PyG's convention). The softmax is the per-node softmax over neighbours of GAT's eq. (3).

    src [E, ...] in CSR order, ptr [N + 1] -> [N, ...]
"""
import torch

from course.checks import check_tensor

REDUCTIONS = ("sum", "mean", "max")


def check_segments(where: str, src, ptr):
    check_tensor(where, "src", src, kind="float")
    check_tensor(where, "ptr", ptr, ndim=1, kind="int")
    if ptr.numel() == 0 or ptr[0] != 0 or ptr[-1] != src.shape[0] \
            or (ptr.numel() > 1 and (ptr.diff() < 0).any()):
        first, last = (ptr[0].item(), ptr[-1].item()) if ptr.numel() else (None, None)
        raise ValueError(f"{where}: `ptr` must be non-decreasing offsets from 0 to src.shape[0] = "
                         f"{src.shape[0]}; got {ptr.numel()} offsets from {first} to {last}.")


def segment(src: torch.Tensor, ptr: torch.Tensor, reduce: str = "sum") -> torch.Tensor:
    """Reduce each segment ptr[i]:ptr[i+1] of `src` with `reduce` (sum, mean or max); empty -> 0."""
    check_segments("gnn.segment", src, ptr)
    if reduce not in REDUCTIONS:
        raise ValueError(f"gnn.segment: `reduce` must be one of {REDUCTIONS}; got {reduce!r}.")
    out = torch.segment_reduce(src, reduce, offsets=ptr.long(), axis=0)
    if reduce != "sum":  # mean and max leave NaN and -inf in empty segments
        empty = (ptr.diff() == 0).view(-1, *([1] * (src.dim() - 1)))
        out = torch.where(empty, torch.zeros((), dtype=out.dtype), out)
    return out


def segment_sum(src, ptr):
    return segment(src, ptr, "sum")


def segment_mean(src, ptr):
    return segment(src, ptr, "mean")


def segment_max(src, ptr):
    return segment(src, ptr, "max")


def broadcast(values: torch.Tensor, ptr: torch.Tensor) -> torch.Tensor:
    """Each segment's value repeated over its positions: [N, ...] -> [E, ...]."""
    return torch.repeat_interleave(values, ptr.diff(), dim=0, output_size=int(ptr[-1]))


def segment_softmax(scores: torch.Tensor, ptr: torch.Tensor) -> torch.Tensor:
    """softmax over each segment: alpha_e = exp(s_e - max) / sum_seg exp(s - max). [E, ...] -> [E, ...]

    Subtracting the segment's maximum keeps exp from overflowing; the result sums to 1 per non-empty
    segment.
    """
    check_segments("gnn.segment_softmax", scores, ptr)
    top = broadcast(segment(scores.detach(), ptr, "max"), ptr)  # [E, ...], constant for the gradient
    z = torch.exp(scores - top)
    return z / broadcast(segment(z, ptr, "sum"), ptr)
