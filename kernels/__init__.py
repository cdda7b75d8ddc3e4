"""Optimized implementations (Triton, CUDA) of the ops in `course.registry`, same signatures.

Importing any kernel module runs this first: where there is no GPU it switches on Triton's CPU
interpreter before Triton is imported, since Triton fixes the mode of its kernels at import.
"""
from course.registry import prepare_triton

prepare_triton()
