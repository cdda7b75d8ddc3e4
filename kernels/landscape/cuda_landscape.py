"""landscape.grid_loss with CUDA kernels: the contract of `course.landscape.grid.grid_loss`.

Li, Xu, Taylor, Studer and Goldstein 2018 (arXiv:1712.09913), section 3, eq. 1 on a whole grid: the
mean cross-entropy of an MLP at the G points theta + alpha_g d1 + beta_g d2. The kernels
(`landscape_grid.cu`) fuse the perturbation into each layer's matmul: every tile of W0, D1 and D2 is
read once per block and combined on chip for the block's grid points, so the G weight copies [G, P]
never exist; a second kernel reduces the float32 logits [G, N, C] to the losses [G] with a stable
logsumexp. `landscape_binding.cpp` exposes them to PyTorch. The extension is compiled by
`torch.utils.cpp_extension` on first use, which needs a CUDA build of PyTorch, nvcc and a GPU. Forward
only; float32 and bfloat16 tensors, float32 arithmetic.
"""
import functools
from pathlib import Path
from types import SimpleNamespace

import torch

from course import outputs
from course.kernels.build import cuda_extension
from course.kernels.launch import check_backend, on_device
from course.kernels.landscape.host import check_grid_kernel_inputs
from course.landscape.grid import check_grid_loss_args

HERE = Path(__file__).parent
SOURCES = ("landscape_binding.cpp", "landscape_grid.cu")

MAX_BUFFER = 2 ** 27  # float32 activations per buffer (512 MB): the grid points run in chunks that fit
MAX_EXAMPLES = 65535 * 64  # the launch grid's y: 64 examples a block
MAX_WIDTH = 65535 * 16  # its z: 16 outputs a block


@functools.cache
def extension():
    """Compile (once, cached by PyTorch) and load the extension."""
    return cuda_extension("course_landscape_cuda", HERE, SOURCES)


def _stream() -> int:
    return torch.cuda.current_stream().cuda_stream


def grid_forward(x, labels, theta, d1, d2, coords, widths: tuple) -> torch.Tensor:
    """x [N, I], theta/d1/d2 [P] contiguous in one dtype, labels [N] int64, coords [G, 2] float32
    -> losses [G] in x's dtype."""
    G, N = coords.shape[0], x.shape[0]
    losses = outputs.empty((G,), dtype=x.dtype, device=x.device)
    if G == 0:
        return losses
    width = max(widths[1:])
    chunk = max(1, min(G, MAX_BUFFER // (N * width)))
    buffers = [torch.empty(chunk * N * width, dtype=torch.float32, device=x.device)
               for _ in range(2 if len(widths) > 2 else 1)]
    return extension().grid_loss(x, labels, theta, d1, d2, coords, list(widths), buffers[0], buffers[-1],
                                 losses, chunk, _stream())


PRIMITIVES = SimpleNamespace(grid_forward=grid_forward, BACKEND="cuda", DEVICE="cuda")


def check_kernel_limits(where: str, x, widths: tuple):
    """The launch grid's limits on the examples and the widths, named."""
    if x.shape[0] > MAX_EXAMPLES:
        raise ValueError(f"{where} (cuda backend): `x` may hold at most {MAX_EXAMPLES} examples; "
                         f"got {x.shape[0]}.")
    if max(widths[1:]) > MAX_WIDTH:
        raise ValueError(f"{where} (cuda backend): `widths` past the input must be at most {MAX_WIDTH}; "
                         f"got {widths}.")


def grid_loss(x, labels, theta, d1, d2, coords, widths) -> torch.Tensor:
    """Mean cross-entropy of the MLP of `widths` at each grid point theta + alpha_g d1 + beta_g d2
    (Li et al. 2018, eq. 1), each layer one CUDA matmul with the perturbation fused in.

    x [N, I], labels [N], theta/d1/d2 [P], coords [G, 2] -> losses [G] (x's dtype).
    """
    where = "landscape.grid_loss"
    widths = check_grid_loss_args(where, x, labels, theta, d1, d2, coords, widths)
    check_grid_kernel_inputs(where, "cuda", x, labels, theta, d1, d2, coords)
    check_backend(where, PRIMITIVES.BACKEND, "x", x)
    check_kernel_limits(where, x, widths)
    with on_device(where, PRIMITIVES, x):
        return PRIMITIVES.grid_forward(x.contiguous(), labels.to(torch.int64).contiguous(),
                                       theta.contiguous(), d1.contiguous(), d2.contiguous(),
                                       coords.to(torch.float32).contiguous(), widths)
