"""landscape.grid_loss with Triton kernels: the contract of `course.landscape.grid.grid_loss`.

The layer kernel with the perturbation fused into its matmul, the cross-entropy kernel and their host
code are in `triton_grid`.
"""
from course.kernels.landscape.triton_grid import grid_loss

__all__ = ["grid_loss"]
