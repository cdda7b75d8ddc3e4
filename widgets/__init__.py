"""Interactive views of the course's computations: data in, ipywidgets / plotly widget out.

Widgets never train and never import kernels; they draw what the library computes.
"""
