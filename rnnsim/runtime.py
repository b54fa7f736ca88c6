"""Process-wide settings for fast kernels, applied only when asked: `configure`.

Importing rnnsim changes nothing in the user's process. `configure` does three things that pay off
in a process that runs many kernels (the ``rnnsim`` command, its worker processes, the tests, and
`rnnsim.warmup` call it; a notebook may call it or not):

1. **Stale kernels are dropped.** Numba keys each cached kernel on the time stamp of its own source
   file only, while the kernels inline helpers from other files; after an edit or an upgrade of one
   of those files a kernel would keep running its old machine code (`rnnsim.kernels.cache`).
   Without `configure`, a kernel cache left by another version of rnnsim is used as it is.
2. **Numba's thread pool is started before the first kernel loads.** A cached serial kernel that
   calls a parallel one has crashed when loaded from disk before the pool existed (numba issue
   #8578, "Segfault when calling nested parallel function with caching"; earlier Numba versions
   also failed with "Symbol not found: allocate_sched"). With Numba 0.68 the kernels load without
   it; the pool would be started by the first parallel kernel anyway.
3. **Freed memory is kept for reuse** (`keep_freed_memory`): on by default, off with
   ``configure(keep_memory=False)`` or the environment variable ``RNNSIM_KEEP_MEMORY=0``; glibc's
   own ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` win over it.
"""

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 1 << 28  # blocks up to 256 MiB come from the heap and are reused
TRIM_THRESHOLD = 1 << 30  # keep up to 1 GiB of free memory at the top of the heap

_configured: dict | None = None


def keep_freed_memory() -> bool:
    """Keep freed memory in the process for the next kernel call instead of returning it to the OS.

    A kernel call allocates its state and gradient arrays afresh (tens of MB for T*B*n states), and
    glibc's malloc serves large blocks with ``mmap`` and unmaps them on ``free``. Every call then
    faults in every page again, and on a virtual machine a page fault costs microseconds: for an
    RNN with n = 256, B = 32, T = 200 that was a fifth of the whole forward and backward pass, and
    for a deep MLP more than half. Raising glibc's mmap and trim thresholds makes ``free`` keep
    such blocks for the next ``malloc``. The cost is a resident size that stays at its peak.

    Returns
    -------
    bool
        True when the thresholds were set; False on other C libraries, when the user has set
        glibc's variables, or when ``RNNSIM_KEEP_MEMORY=0``.
    """
    if os.environ.get("RNNSIM_KEEP_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


def start_thread_pool() -> None:
    """Start Numba's thread pool now (item 2 of the module docstring); a no-op once started."""
    from numba.np.ufunc.parallel import _launch_threads  # private, but stable since Numba 0.4x

    _launch_threads()


def configure(keep_memory: bool = True, refresh_cache: bool = True) -> dict:
    """Apply the process-wide settings of the module docstring; calling it again does nothing.

    Parameters
    ----------
    keep_memory : bool
        Keep freed memory for reuse (item 3). ``RNNSIM_KEEP_MEMORY=0`` overrides True.
    refresh_cache : bool
        Drop cached kernels whose sources changed (item 1).

    Returns
    -------
    dict
        What the first call did: ``{"kept_memory": bool, "refreshed_cache": bool,
        "thread_pool": True}``.
    """
    global _configured
    if _configured is not None:
        return _configured
    from rnnsim.kernels.cache import refresh_stale_cache

    refreshed = refresh_stale_cache() if refresh_cache else False
    start_thread_pool()
    kept = keep_freed_memory() if keep_memory else False
    _configured = {"kept_memory": kept, "refreshed_cache": refreshed, "thread_pool": True}
    return _configured
