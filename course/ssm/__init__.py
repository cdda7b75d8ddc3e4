"""Recurrent, linear-recurrent and state-space sequence models (family `sequence-models`).

The library: `scan` (the diagonal linear recurrence h_t = a_t * h_{t-1} + x_t in its three forms:
step by step, a parallel associative scan, and chunked), `selective` (Mamba's selective state-space
scan, its state of size N per channel); the registry's ops in `ops`; one module per paper, with its
toy and its claim, in `papers/`.
"""
FAMILY = "sequence-models"
WIDGET = "course.widgets.states:gallery"
