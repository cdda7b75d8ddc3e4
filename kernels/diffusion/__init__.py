"""Diffusion kernels: the ideal denoiser of a training set as a streaming-softmax attention (flash
attention's loop, forward and the backward with respect to the queries), and the sampler's fused
elementwise steps, Heun's step of EDM's Algorithm 2 and the preconditioning after the network."""
