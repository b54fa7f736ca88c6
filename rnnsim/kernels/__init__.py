"""Numba kernels: ``@njit`` functions on float64 arrays (see DESIGN.md, layer "kernels").

Importing them changes nothing in the process; `rnnsim.runtime.configure` holds the process-wide
settings that make them fast.
"""
