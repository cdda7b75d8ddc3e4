"""A notebook-first course on neural-network architecture papers.

`course` holds the reference implementation of every paper (plain PyTorch + einops), the spec that
the kernels in `course.kernels` are checked against and that the widgets in `course.widgets` draw.
"""
from course.registry import all_ops, get
from course.show import show

__version__ = "0.1.0"
__all__ = ["all_ops", "get", "show", "__version__"]
