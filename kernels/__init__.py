"""Optimized implementations (Triton, CUDA) of the ops in `course.registry`, same signatures."""
