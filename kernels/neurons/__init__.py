"""Neuron-model kernels: the rational activation by Horner's rule (forward, and the backward with the
coefficients' gradients reduced per block), the B-spline KAN layer with the basis evaluated and contracted
on chip, and the PHM layer's Kronecker-structured matmul that never forms the weight."""
