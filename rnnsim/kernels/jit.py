"""One home for the kernels' Numba options.

``error_model="numpy"``: a float division by zero gives inf/nan as in NumPy instead of raising, which
removes a branch from every division and lets LLVM vectorise loops that divide (the exp-based
activations). ``cache=True`` keeps compiled kernels on disk so that a new process does not recompile.
No fastmath: kernels are compared with their NumPy twins at tight tolerances. ``nogil``: the
kernels touch no Python object, and releasing the GIL lets the main thread of a serial run take a
Ctrl-C while a kernel runs (`rnnsim.executors`). When no directory is
writable for the cache, ``cache`` is False with a one-line warning (`rnnsim.kernels.cache`).
"""

from rnnsim.kernels.cache import cacheable

JIT = {"cache": cacheable(), "error_model": "numpy", "nogil": True}
JIT_INLINE = {**JIT, "inline": "always"}
