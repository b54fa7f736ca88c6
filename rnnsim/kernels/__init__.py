"""Numba kernels.

Importing them starts Numba's thread pool: a cached serial kernel that calls a parallel one needs
the pool's scheduling symbols when it is loaded from the on-disk cache ("Symbol not found:
allocate_sched"). It also keeps freed memory for reuse (`rnnsim.kernels.memory`) and empties
Numba's cache of these kernels when their sources changed (`rnnsim.kernels.cache`).
"""

from numba.np.ufunc.parallel import _launch_threads

from rnnsim.kernels.cache import refresh_stale_cache
from rnnsim.kernels.memory import keep_freed_memory

refresh_stale_cache()
_launch_threads()
keep_freed_memory()
