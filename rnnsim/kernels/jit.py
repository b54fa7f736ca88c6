"""One home for the kernels' Numba options.

``error_model="numpy"``: a float division by zero gives inf/nan as in NumPy instead of raising, which
removes a branch from every division and lets LLVM vectorise loops that divide (the exp-based
activations). ``cache=True`` keeps compiled kernels on disk so that a new process does not recompile.
No fastmath: kernels are compared with their NumPy twins at tight tolerances. ``nogil``: every
kernel releases the GIL (they touch no Python object), so that threads can run kernels side by side
(`rnnsim.kernels.blas.parallel_map`) and the main thread of a serial run takes a Ctrl-C while a
kernel runs (`rnnsim.executors`); a kernel need not, and cannot, pass ``nogil`` again. When no
directory is writable for the cache, ``cache`` is False with a one-line warning
(`rnnsim.kernels.cache`).
"""

from rnnsim.kernels.cache import cacheable

JIT = {"cache": cacheable(), "error_model": "numpy", "nogil": True}
JIT_INLINE = {**JIT, "inline": "always"}
