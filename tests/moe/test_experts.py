"""The experts' grouped matmul: the tile map, clear errors per backend, and gradients at the edges.

Every backend is compared with the reference on the op's test cases by tests/test_ops.py (and the
CUDA one on the emulator by tests/test_cuda_emulated.py); here are the properties those cases do not
spell out.
"""
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course import registry
from course.moe.experts import expert_tiles

ROOT = Path(__file__).resolve().parents[2]
OP = registry.get("moe.expert_mlp")
RUNNABLE = [impl for impl in OP.impls if impl.availability("cpu")[0]]
ALL = list(OP.impls)  # argument checks come before any kernel, so even CUDA's run here


def inputs(counts, D=6, H=5, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    counts = torch.tensor(counts)
    E, S = counts.numel(), int(counts.sum())
    return dict(x=torch.randn(S, D, generator=g).to(dtype), counts=counts,
                w1=torch.randn(E, D, H, generator=g).to(dtype),
                w2=torch.randn(E, H, D, generator=g).to(dtype))


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(0, 70), min_size=1, max_size=9),
       block_m=st.sampled_from([1, 4, 16, 32]))
def test_tile_map_covers_every_row_once_within_one_expert(counts, block_m):
    counts = torch.tensor(counts)
    tiles = expert_tiles(counts, block_m)
    S = int(counts.sum())
    covered = torch.zeros(S, dtype=torch.long)
    expert_of_row = torch.repeat_interleave(torch.arange(counts.numel()), counts)
    for e, start, end in zip(*(t.tolist() for t in tiles)):
        assert 0 < end - start <= block_m  # no empty tile, none larger than a block
        covered[start:end] += 1
        assert (expert_of_row[start:end] == e).all()  # a tile never straddles two experts
    assert (covered == 1).all()
    assert len(tiles.expert) == sum(-(-c // block_m) for c in counts.tolist())  # no tile wasted
    assert torch.equal(tiles.start, tiles.start.sort().values)  # tiles in row order


def test_tile_map_of_no_rows_is_empty():
    tiles = expert_tiles(torch.tensor([0, 0, 0]), 32)
    assert all(t.numel() == 0 for t in tiles)


@pytest.mark.parametrize("impl", ALL, ids=[i.backend for i in ALL])
@pytest.mark.parametrize("change,error,names", [
    (dict(w1=torch.randn(3, 7, 5)), ValueError, "`w1`"),
    (dict(w2=torch.randn(3, 5, 5)), ValueError, "`w2`"),
    (dict(counts=torch.tensor([4, 4])), ValueError, "`counts`"),
    (dict(counts=torch.tensor([4, 4, 3])), ValueError, "sum to S"),
    (dict(counts=torch.tensor([6, -1, 5])), ValueError, "non-negative"),
    (dict(counts=torch.tensor([4.0, 4.0, 2.0])), TypeError, "`counts`"),
    (dict(x=torch.randn(10)), ValueError, "`x`"),
    (dict(w1=torch.randn(3, 6, 5, dtype=torch.float64)), TypeError, "dtype of `x`"),
])
def test_bad_arguments_are_named(impl, change, error, names):
    kwargs = {**inputs([4, 0, 6]), **change}
    with pytest.raises(error, match=names):
        impl.load()(**kwargs)


def test_cuda_backend_names_its_dtype_limit():
    with pytest.raises(TypeError, match="float32"):
        OP.impl("cuda").load()(**inputs([3, 2], dtype=torch.float16))


@pytest.mark.parametrize("impl", RUNNABLE, ids=[i.backend for i in RUNNABLE])
def test_an_empty_expert_gets_zero_weight_gradients(impl):
    kwargs = inputs([0, 37, 0, 5], D=9, H=20)  # experts 0 and 2 see no rows; 37 rows span two tiles
    w1, w2 = (kwargs[n].requires_grad_() for n in ("w1", "w2"))
    impl.load()(**kwargs).square().sum().backward()
    for e in (0, 2):
        assert torch.equal(w1.grad[e], torch.zeros_like(w1.grad[e]))
        assert torch.equal(w2.grad[e], torch.zeros_like(w2.grad[e]))
    assert w1.grad[1].abs().sum() > 0 and w2.grad[3].abs().sum() > 0


@pytest.mark.parametrize("impl", RUNNABLE, ids=[i.backend for i in RUNNABLE])
def test_experts_see_only_their_own_rows(impl):
    """Zeroing one expert's weights zeroes exactly that expert's block of output rows."""
    kwargs = inputs([5, 40, 3], D=8, H=16)
    kwargs["w2"][1] = 0
    out = impl.load()(**kwargs)
    assert torch.equal(out[5:45], torch.zeros(40, 8))
    assert out[:5].abs().sum() > 0 and out[45:].abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_triton_backend_in_half_precision(dtype):
    impl = OP.impl("triton")
    if not impl.availability("cpu")[0]:
        pytest.skip(impl.availability("cpu")[1])
    kwargs = inputs([7, 0, 20], D=16, H=32, dtype=dtype)
    if dtype == torch.bfloat16 and registry.triton_mode() == "interpreter":
        # the interpreter's tl.dot multiplies bfloat16 bit patterns (triton-lang/triton#11584): refused
        with pytest.raises(TypeError, match=r"moe.expert_mlp \(triton backend\).*got torch.bfloat16"):
            impl.load()(**kwargs)
        return
    kwargs["w1"] /= 4
    kwargs["w2"] /= 6
    expected = OP.reference.load()(**{k: v.float() if v.is_floating_point() else v
                                      for k, v in kwargs.items()})
    out = impl.load()(**kwargs)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), expected, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("backend,dtype", [("triton", torch.float64), ("cuda", torch.float16)])
def test_a_dtype_the_grouped_gemm_does_not_offer_is_refused(backend, dtype):
    """Checked on the host before any kernel is built or launched, so it runs without a GPU."""
    with pytest.raises(TypeError, match=rf"moe.expert_mlp \({backend} backend\).*got {dtype}"):
        OP.impl(backend).load()(**inputs([3, 5], D=8, H=8, dtype=dtype))


@pytest.mark.parametrize("impl", ALL, ids=[i.backend for i in ALL])
def test_rows_with_no_experts_are_refused(impl):
    """E = 0 with rows: Triton returned uninitialised memory and the reference failed in torch.split."""
    kwargs = dict(x=torch.randn(3, 4), counts=torch.zeros(0, dtype=torch.long),
                  w1=torch.randn(0, 4, 5), w2=torch.randn(0, 5, 4))
    with pytest.raises(ValueError, match=r"`counts` must be non-negative and sum to S = x.shape\[0\] = 3"):
        impl.load()(**kwargs)


def test_cuda_backend_refuses_cpu_tensors_before_any_kernel():
    with pytest.raises(ValueError, match=r"moe.expert_mlp \(cuda backend\): tensors must be on a CUDA"
                                         " device"):
        OP.impl("cuda").load()(**inputs([3, 2]))


def test_every_cuda_launch_is_checked():
    """The binding asks the runtime after each launch, so a refused launch raises by name."""
    binding = (ROOT / "kernels" / "moe" / "moe_binding.cpp").read_text().splitlines()
    launches = [i for i, line in enumerate(binding) if line.strip().startswith("launch_")]
    assert len(launches) == 7
    for i in launches:
        end = next(j for j in range(i, len(binding)) if binding[j].rstrip().endswith(");"))
        assert binding[end + 1].strip().startswith("check_launch("), binding[i]
