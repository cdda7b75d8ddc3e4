"""A notebook-first course on neural-network architecture papers.

`course` holds the reference implementation of every paper (plain PyTorch + einops), the spec that
the kernels in `course.kernels` are checked against and that the widgets in `course.widgets` draw.
"""
import torch

from course.registry import all_ops, get, prepare_triton
from course.show import show
from course.testing import check

__version__ = "0.1.0"
__all__ = ["all_ops", "check", "get", "setup", "show", "__version__"]


def setup(seed: int = 0) -> str:
    """Start a notebook: fixed seeds, and Triton's interpreter where there is no GPU.

    Returns one line saying where this notebook runs and how Triton kernels will run.
    """
    torch.manual_seed(seed)
    triton = prepare_triton()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    return f"course {__version__} on {device}, torch {torch.__version__.split('+')[0]}; Triton: {triton}"
