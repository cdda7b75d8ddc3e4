"""A notebook-first course on neural-network architecture papers.

`course` holds the reference implementation of every paper (plain PyTorch + einops), the spec that
the kernels in `course.kernels` are checked against and that the widgets in `course.widgets` draw.
"""
from course import numerics

numerics.pin()  # before torch computes: the same numbers on every x86-64 machine

import torch  # noqa: E402

from course.exercises import solution  # noqa: E402
from course.registry import all_ops, default_device, get, prepare_triton  # noqa: E402
from course.show import show  # noqa: E402
from course.testing import check  # noqa: E402

__version__ = "0.1.0"
__all__ = ["all_ops", "check", "default_device", "get", "setup", "show", "solution", "__version__"]

FIGURE_WIDTH_IN = 11.0  # at 100 dpi a figure fills a notebook column of about 1100 px


def setup(seed: int = 0) -> str:
    """Start a notebook: fixed seeds, Triton's interpreter where there is no GPU, figures that fill
    the notebook's width.

    Returns one line saying where this notebook runs and how Triton kernels will run.
    """
    import matplotlib

    torch.manual_seed(seed)
    triton = prepare_triton()
    matplotlib.rcParams.update({"figure.figsize": (FIGURE_WIDTH_IN, 3.4), "figure.dpi": 100,
                                "savefig.dpi": 100, "axes.grid": True, "grid.alpha": 0.3})
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    same, numbers = numerics.pinned()
    return (f"course {__version__} on {device}, torch {torch.__version__.split('+')[0]}; Triton: {triton}"
            + ("" if same else f"\nnumerics: {numbers}"))
