"""Sequence-model kernels: the diagonal linear scan h_t = a_t h_{t-1} + x_t and Mamba's selective scan,
the states held on chip in float32, forward and backward."""
