"""Graph kernels: the CSR sparse-dense product (GCN's and SGC's propagation) and GAT's neighbourhood
attention as one online-softmax pass, with the backward passes of both built from the same kernels."""
