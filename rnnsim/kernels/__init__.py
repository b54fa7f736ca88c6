"""Numba kernels.

Importing them starts Numba's thread pool: a cached serial kernel that calls a parallel one needs
the pool's scheduling symbols when it is loaded from the on-disk cache ("Symbol not found:
allocate_sched").
"""

from numba.np.ufunc.parallel import _launch_threads

_launch_threads()
