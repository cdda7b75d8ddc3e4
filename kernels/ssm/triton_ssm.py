"""ssm.scan and ssm.selective_scan with Triton kernels: the contracts of `course.ssm.scan.scan` and
`course.ssm.selective.selective_scan`, forward and backward.

The chunked associative scan and its reverse scan are in `triton_scan`; Mamba's selective scan, with the
N states of a channel on chip and its backward by a reverse walk over recomputed states, in
`triton_selective`.
"""
from course.kernels.ssm.triton_scan import scan
from course.kernels.ssm.triton_selective import selective_scan

__all__ = ["scan", "selective_scan"]
