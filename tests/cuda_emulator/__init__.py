"""A CPU emulator of CUDA for the tests: runs the project's .cu kernels without a GPU (see build.py)."""
