"""Singh et al. 2023, "A Hybrid Tensor-Expert-Data Parallelism Approach to Optimize Mixture-of-
Experts Training" (DeepSpeed-TED): its expert-parallel axis, run for real on local processes.

`run_expert_parallel` launches W processes (gloo on CPU, `course.distributed.launch`), builds the
same seeded `MoELayer` in each and in the parent, runs `course.moe.expert_parallel` on every rank's
shard of the tokens, and compares outputs and gradients with the single-process layer; it also
reports the bytes each rank sends in each all-to-all (after GShard, Lepikhin et al. 2020).

The claim is a demonstration: the bytes are counted from the all-to-all split sizes, not measured
on a wire, and under a uniform routing they follow from the sizes. The agreement of every output
and gradient with the single-process layer is what could have failed.
"""
import time
from dataclasses import dataclass, field

import torch

from course import distributed
from course.claims import DEMONSTRATION, Claim
from course.moe.expert_parallel import AllToAllBytes, ExpertParallelMoE, check_expert_split
from course.moe.layer import MoELayer
from course.testing import error_ratio
from course.train import seeded


def make_problem(world_size: int, T: int, D: int, H: int, E: int, k: int, seed: int = 0,
                 train: bool = True, router_scale: float = 1.0, unused_experts: tuple = (),
                 rank0_stays_local: bool = False):
    """A seeded layer, tokens x [T, D] and upstream gradient [T, D], the same in every process.

    Feature D-1 of x is a constant 1, a bias the router uses to switch off `unused_experts`; with
    `rank0_stays_local`, feature D-2 marks rank 0's tokens and the router keeps them on rank 0's
    experts, so rank 0 sends no row to any other rank. `router_scale=0` keeps the paper's zero router,
    where the noise alone routes, uniformly over the experts.
    """
    check_expert_split(E, world_size, "make_problem")
    if D < 3:
        raise ValueError(f"make_problem: `D` must be >= 3 (two features steer the router); got {D}.")
    usable = E // world_size - sum(e < E // world_size for e in set(unused_experts))
    if rank0_stays_local and k > usable:
        raise ValueError(f"make_problem: with `rank0_stays_local`, `k` must be <= rank 0's usable "
                         f"experts ({usable}); got k={k}.")
    with seeded(seed):
        layer = MoELayer(D, H, E, k, backend="reference")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.w_gate.copy_(router_scale * torch.randn(D, E, generator=g) / D ** 0.5)
        layer.w_noise.copy_(router_scale * torch.randn(D, E, generator=g) / D ** 0.5)
        layer.w_gate[-1, list(unused_experts)] = -100.0
        if rank0_stays_local:
            layer.w_gate[-2, E // world_size:] = -100.0
    x = torch.randn(T, D, generator=g)
    x[:, -1] = 1.0
    if rank0_stays_local:
        x[:, -2] = 0.0
        x[:len(x.tensor_split(world_size)[0]), -2] = 1.0
    upstream = torch.randn(T, D, generator=g)
    return layer.train(train), x, upstream


def rank_generator(seed: int, rank: int) -> torch.Generator:
    """The router noise of rank `rank`'s tokens (training mode draws noise per process)."""
    return torch.Generator().manual_seed(1000 * (seed + 1) + rank)


def single_process_reference(world_size: int, **problem) -> dict:
    """The `MoELayer` in one process: outputs, routing, and gradients of x and every parameter.

    With noise (training mode) the layer runs once per token shard with that rank's noise draw, the
    same noise the ranks use; without noise it runs once on the whole batch.
    """
    layer, x, upstream = make_problem(world_size, **problem)
    x = x.clone().requires_grad_()
    if layer.training:
        outs = [layer(x_r, generator=rank_generator(problem.get("seed", 0), r))
                for r, x_r in enumerate(x.tensor_split(world_size))]
    else:
        outs = [layer(x)]
    y = torch.cat([o.y for o in outs])  # [T, D]
    (y * upstream).sum().backward()
    grads = {f"grad {n}": p.grad for n, p in layer.named_parameters() if p.grad is not None}
    return {"y": y.detach(), "grad x": x.grad, **grads,
            "expert_index": torch.cat([o.gating.expert_index for o in outs])}


def expert_parallel_rank(rank: int, world_size: int, problems: list) -> list:
    """One rank of `run_expert_parallel`: each problem's forward and backward of its token shard."""
    return [expert_parallel_step(rank, world_size, problem) for problem in problems]


def expert_parallel_step(rank: int, world_size: int, problem: dict) -> dict:
    """Forward and backward of this rank's shard of one problem's tokens."""
    layer, x, upstream = make_problem(world_size, **problem)
    shard = ExpertParallelMoE(layer, rank, world_size)
    x_r = x.tensor_split(world_size)[rank].clone().requires_grad_()  # [T_r, D]
    out = shard(x_r, generator=rank_generator(problem.get("seed", 0), rank))
    (out.y * upstream.tensor_split(world_size)[rank]).sum().backward()
    shard.all_reduce_router_grads()
    grads = {f"grad {n}": p.grad for n, p in shard.named_parameters() if p.grad is not None}
    return {"y": out.y.detach(), "grad x": x_r.grad, **grads, "sent": tuple(out.sent)}


@dataclass
class ExpertParallelResult:
    """Expert-parallel ranks against the single-process layer, and what each rank sent."""

    world_size: int
    problem: dict
    errors: dict = field(default_factory=dict)  # name -> (max abs difference, RMS-relative error)
    sent: list = field(default_factory=list)  # AllToAllBytes per rank
    seconds: float = 0.0  # wall time of the launch, process start included

    def worst(self) -> float:
        return max(rel for _, rel in self.errors.values())

    def __repr__(self) -> str:
        lines = [f"expert parallel, {self.world_size} ranks, launch {self.seconds:.1f} s"]
        lines += [f"  {name:<13} max |diff| {a:.2e}   RMS-relative {r:.2e}"
                  for name, (a, r) in self.errors.items()]
        lines += [f"  rank {r} sent  counts {s.counts} B, dispatch {s.dispatch} B, combine {s.combine} B"
                  for r, s in enumerate(self.sent)]
        return "\n".join(lines)


def difference(actual, expected) -> tuple[float, float]:
    """(max abs difference, RMS-relative error) of two tensors."""
    gap = (actual - expected).abs()
    return (gap.max().item() if gap.numel() else 0.0), error_ratio(actual, expected)


def expert_parallel_problem(T: int = 64, D: int = 16, H: int = 32, E: int = 4, k: int = 2,
                            seed: int = 0, train: bool = True, router_scale: float = 1.0,
                            unused_experts: tuple = (), rank0_stays_local: bool = False) -> dict:
    """The arguments of `make_problem`, as one picklable dict."""
    return dict(T=T, D=D, H=H, E=E, k=k, seed=seed, train=train, router_scale=router_scale,
                unused_experts=tuple(unused_experts), rank0_stays_local=rank0_stays_local)


def run_expert_parallel(world_size: int = 2, T: int = 64, D: int = 16, H: int = 32, E: int = 4,
                        k: int = 2, seed: int = 0, train: bool = True, router_scale: float = 1.0,
                        unused_experts: tuple = (), rank0_stays_local: bool = False,
                        timeout_s: float = 120.0) -> ExpertParallelResult:
    """Run an `MoELayer` expert-parallel over `world_size` local processes and check it.

    Each rank builds the same seeded layer, keeps its token shard and its E / W experts, and runs
    forward and backward of (y * upstream).sum(); expert gradients stay on their owner rank and the
    replicated router's gradients are all-reduced. Compared with `single_process_reference`.
    """
    problem = expert_parallel_problem(T, D, H, E, k, seed, train, router_scale, unused_experts,
                                      rank0_stays_local)
    return run_expert_parallel_problems([problem], world_size, timeout_s)[0]


def run_expert_parallel_problems(problems: list, world_size: int = 2,
                                 timeout_s: float = 120.0) -> list[ExpertParallelResult]:
    """Several problems in one launch of the ranks (starting processes costs more than the work)."""
    references = [single_process_reference(world_size, **p) for p in problems]  # checks arguments
    start = time.perf_counter()
    ranks = distributed.launch(expert_parallel_rank, world_size, problems, timeout_s=timeout_s)
    seconds = time.perf_counter() - start
    return [compared(world_size, problem, reference, [r[i] for r in ranks], seconds)
            for i, (problem, reference) in enumerate(zip(problems, references))]


def compared(world_size: int, problem: dict, reference: dict, ranks: list,
             seconds: float) -> ExpertParallelResult:
    """The ranks' outputs and gradients against the single-process reference."""
    result = ExpertParallelResult(world_size, problem, seconds=seconds,
                                  sent=[AllToAllBytes(*r["sent"]) for r in ranks])
    for name, expected in reference.items():
        if name == "expert_index":
            continue
        if name in ("grad w_gate", "grad w_noise"):  # replicated: every rank holds the full sum
            result.errors[name] = max((difference(r[name], expected) for r in ranks),
                                      key=lambda d: d[1])
        else:  # sharded by tokens (y, x) or by experts (w1, w2): the ranks' parts in rank order
            result.errors[name] = difference(torch.cat([r[name] for r in ranks]), expected)
    return result


def expert_parallel_experiment(seed: int, world_size: int = 2, T: int = 1024, D: int = 32,
                               E: int = 4, k: int = 2) -> dict:
    """Bytes each rank sends per all-to-all under uniform routing, against T_r k D b (W - 1) / W,
    and the largest difference from the single-process layer.

    The paper's zero router (router_scale=0): the noise alone routes, uniformly over the experts.
    """
    result = run_expert_parallel(world_size, T, D, 2 * D, E, k, seed, router_scale=0.0)
    shards = [len(s) for s in torch.arange(T).tensor_split(world_size)]
    expected = [t * k * D * 4 * (world_size - 1) / world_size for t in shards]
    ratios = [s.dispatch / b for s, b in zip(result.sent, expected)]
    ratios += [s.combine / b for s, b in zip(result.sent, expected)]
    return {"world_size": world_size, "tokens_per_rank": shards[0], "k": k, "D": D,
            "dispatch_bytes": [s.dispatch for s in result.sent],
            "combine_bytes": [s.combine for s in result.sent], "expected_bytes": expected,
            "ratio_min": min(ratios), "ratio_max": max(ratios),
            "worst_rms_relative": result.worst()}


CLAIM = Claim(
    paper="Singh et al. 2023 (DeepSpeed-TED), after GShard",
    citation="A Hybrid Tensor-Expert-Data Parallelism Approach to Optimize Mixture-of-Experts "
             "Training (arXiv:2303.06318), section 3; GShard (arXiv:2006.16668)",
    statement="expert parallelism moves each routed token row to its expert's rank and back with two "
              "all-to-alls; under uniform routing a rank sends T_r k D b (W - 1) / W bytes in each, "
              "and the layer computes what the single-process layer computes",
    kind=DEMONSTRATION,
    experiment=expert_parallel_experiment,
    thresholds=("ratio_min >= 0.9", "ratio_max <= 1.1", "worst_rms_relative <= 1e-5"),
    summary=lambda m: (
        f"{m['world_size']} ranks, T_r={m['tokens_per_rank']}, k={m['k']}, D={m['D']}, fp32: rank 0 "
        f"sent {m['dispatch_bytes'][0]:,} B (dispatch) and {m['combine_bytes'][0]:,} B (combine) vs "
        f"{m['expected_bytes'][0]:,.0f} B expected; sent/expected from {m['ratio_min']:.3f} to "
        f"{m['ratio_max']:.3f} over ranks; outputs and gradients equal the single-process layer "
        f"to RMS-relative {m['worst_rms_relative']:.1e}"),
)
