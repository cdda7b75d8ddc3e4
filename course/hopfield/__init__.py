"""Associative memory, memory networks and relational reasoning (family `associative-memory`).

The library: `classical` (the binary Hopfield network: Hebb's rule, its energy, its updates), `modern`
(the continuous modern Hopfield network, whose update is attention: its energy, retrieval, separation)
and `sparse` (sparsemax retrieval and its energy); the streaming softmax that the retrieval kernels and
the diffusion family's ideal denoiser share is `course.streaming`; the registry's ops in `ops`; one
module per paper, with its toy and its claim, in `papers/`.
"""
FAMILY = "associative-memory"
WIDGET = "course.widgets.energy:gallery"

from course.hopfield import classical, modern, sparse  # noqa: E402  (the modules, by name)
from course.hopfield.modern import energy, retrieve  # noqa: E402
from course.hopfield.sparse import sparse_energy, sparse_retrieve  # noqa: E402

__all__ = ["classical", "energy", "modern", "retrieve", "sparse", "sparse_energy", "sparse_retrieve"]
