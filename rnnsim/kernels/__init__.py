"""Numba kernels.

Importing them (1) limits the BLAS that Numba calls to one thread per call
(`rnnsim.kernels.blas`), since the kernels parallelise over independent work themselves, and
(2) starts Numba's thread pool: a cached serial kernel that calls a parallel one needs the pool's
scheduling symbols when it is loaded from the on-disk cache ("Symbol not found: allocate_sched").
"""

from numba.np.ufunc.parallel import _launch_threads

from rnnsim.kernels.blas import single_threaded_numba_blas

_launch_threads()
single_threaded_numba_blas()
