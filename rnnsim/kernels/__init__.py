"""Numba kernels.

Importing them starts Numba's thread pool: a cached serial kernel that calls a parallel one needs
the pool's scheduling symbols when it is loaded from the on-disk cache ("Symbol not found:
allocate_sched"). It also keeps freed memory for reuse (`rnnsim.kernels.memory`).
"""

from numba.np.ufunc.parallel import _launch_threads

from rnnsim.kernels.memory import keep_freed_memory

_launch_threads()
keep_freed_memory()
