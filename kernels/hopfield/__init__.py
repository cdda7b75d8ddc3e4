"""Associative-memory kernels: modern Hopfield retrieval with softmax or sparsemax weights, forward and
backward for the queries and the stored patterns. The streaming loop itself is the course's shared one
(`kernels/triton_streaming.py`, `kernels/streaming_softmax.cu`), which the diffusion family's ideal denoiser
runs too; this folder holds the ops' backends over it."""
